"""Which tag scheme a CoNLL file is written in, and why; files that mix schemes or use tags their
run's scheme lacks are refused when they are read (not at the first validation, an epoch later).

    bioes   the file has E-/S- tags, and every entity ends on E- or is one S- tag
    iob2    B-/I- tags only (iob1 when entities start with I-; see `tags.detect_scheme`)
    mixed   E-/S- tags beside entities that end on B- or I- (IOB2-style): an error naming both lines

One stray S- tag in an IOB2 training file would otherwise turn the whole corpus into BIOES.
"""

from __future__ import annotations

from rnncli.data.conll import Sentence
from rnncli.data.tags import detect_scheme, split_tag
from rnncli.errors import DataError


def _first_lines(sentences: list[Sentence]) -> tuple[tuple[int, str] | None, tuple[int, str] | None]:
    """(line, tag) of the first E-/S- tag, and of the first B-/I- tag that ends an entity."""
    bioes = open_end = None
    for s in sentences:
        for i, (tag, line) in enumerate(zip(s.tags, s.lines or [0] * len(s.tags))):
            prefix, kind = split_tag(tag)
            if prefix in ("E", "S") and bioes is None:
                bioes = (line, tag)
            if prefix in ("B", "I") and open_end is None:
                nxt = split_tag(s.tags[i + 1]) if i + 1 < len(s.tags) else ("O", "")
                if not (nxt[0] in ("I", "E") and nxt[1] == kind):
                    open_end = (line, tag)
    return bioes, open_end


def check_mixed(sentences: list[Sentence], path: str) -> None:
    bioes, open_end = _first_lines(sentences)
    if bioes and open_end:
        raise DataError(f"{path}:{bioes[0]}: tag '{bioes[1]}' is BIOES, but {path}:{open_end[0]} ends an entity "
                        f"on '{open_end[1]}' as IOB2 does: the file mixes tag schemes; write it in one")


def detect(sentences: list[Sentence], path: str) -> tuple[str, str]:
    """(scheme, why) of a training file; mixed schemes are a DataError."""
    check_mixed(sentences, path)
    bioes, _ = _first_lines(sentences)
    if bioes:
        return "bioes", f"detected from {path}: E-/S- tags, the first '{bioes[1]}' at line {bioes[0]}"
    scheme = detect_scheme(s.tags for s in sentences)
    why = "entities start with I-" if scheme == "iob1" else "B-/I- tags, no E-/S-"
    return scheme, f"detected from {path}: {why}"


def check_file(sentences: list[Sentence], path: str, scheme: str, why: str) -> None:
    """Every tag of this file exists in the run's `scheme`, and the file does not mix schemes."""
    bioes, _ = _first_lines(sentences)
    if bioes and scheme != "bioes":
        raise DataError(f"{path}:{bioes[0]}: tag '{bioes[1]}' is not an {scheme} tag; the run reads its files "
                        f"as {scheme} ({why}). Write this file in {scheme}, or set data.scheme")
    check_mixed(sentences, path)
