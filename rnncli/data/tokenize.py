"""Tokenizers for text classification: a regex word tokenizer (default) and characters; and
`conll_tokens`, raw text split as CoNLL files are (for NER's predict).

The word tokenizer follows the Penn-Treebank habits GloVe and word2vec vocabularies were built
with, so pretrained vectors match as many tokens as possible:

    "Don't buy it -- it's $20!"  ->  do n't buy it - - it 's $ 20 !      (lowercase=True)

    words       runs of letters/digits/underscore: `\\w+`
    clitics     n't, 's, 're, 've, 'll, 'd, 'm split off their word ("do" + "n't")
    the rest    every other non-space character is a token of its own
"""

from __future__ import annotations

import re

TOKENIZERS = ("word", "char")

_WORD = re.compile(
    r"\w+(?=n't\b)"  # the stem before n't: do|n't, ca|n't
    r"|n't\b"
    r"|'(?:s|re|ve|ll|d|m)\b"  # clitics; a quote mark 'like this' stays a token of its own
    r"|\w+"
    r"|[^\w\s]",
    re.IGNORECASE,
)


def word_tokens(text: str) -> list[str]:
    return _WORD.findall(text)


def char_tokens(text: str) -> list[str]:
    """Every character, spaces included (runs of whitespace collapse to one space)."""
    return list(" ".join(text.split()))


def tokenize(text: str, tokenizer: str = "word", lowercase: bool = True) -> list[str]:
    """`text` -> tokens with the named tokenizer (`word` or `char`), lowercased if asked."""
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {tokenizer!r}; allowed: {', '.join(TOKENIZERS)}")
    if lowercase:
        text = text.lower()
    return word_tokens(text) if tokenizer == "word" else char_tokens(text)


_EDGES = re.compile(r"^([(\[{\"'`“‘]*)(.*?)([.,;:!?)\]}\"'`”’]*)$")


def conll_tokens(text: str) -> list[str]:
    """Raw text -> tokens as CoNLL files hold them: split on whitespace, with the punctuation at a
    word's start or end split off, one mark a token (`London.` -> `London` `.`); marks inside a word
    stay (`O'Neil`, `e-mail`, `#rnn`, `@ada`)."""
    out = []
    for word in text.split():
        lead, core, trail = _EDGES.match(word).groups()
        out += [*lead, *([core] if core else []), *trail]
    return out
