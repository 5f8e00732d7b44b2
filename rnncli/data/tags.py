"""Entity tag schemes and span-level scores, computed exactly as conlleval / seqeval do.

A tag is `O` or `PREFIX-TYPE` with PREFIX one of B, I, E, S:

    tokens   Ada      Lovelace  was  born  in  New     York    .
    IOB1     I-PER    I-PER     O    O     O   I-LOC   I-LOC   O    B- only where two same-type
                                                                     entities touch
    IOB2     B-PER    I-PER     O    O     O   B-LOC   I-LOC   O    B- starts every entity
    BIOES    B-PER    E-PER     O    O     O   B-LOC   E-LOC   O    S- = single-token entity

Spans are (type, start, end) with `end` inclusive, as seqeval's `get_entities` returns them.

Two ways to read a (possibly invalid) sequence into spans:
  default  conlleval's chunk rules (`spans`): every scheme at once, and invalid sequences are
           repaired the way conlleval does (an I-X after O starts an entity, a type change
           ends one). Converting between schemes goes through these spans, so `convert` also
           repairs.
  strict   seqeval's `mode="strict"` (`strict_spans`): an entity counts only when its prefixes
           follow the scheme's patterns exactly (e.g. in IOB2 an I-X after O is no entity).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

SCHEMES = ("iob1", "iob2", "bioes")
PREFIXES = ("B", "I", "E", "S")
Span = tuple[str, int, int]  # (type, start, end inclusive)


def split_tag(tag: str) -> tuple[str, str]:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', ''). A ValueError names what is wrong."""
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix not in PREFIXES or not kind:
        raise ValueError(f"tag '{tag}' is not O or one of B-, I-, E-, S- followed by a type")
    return prefix, kind


# --------------------------------------------------------------------------- default (conlleval)
def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


def spans(tags: Sequence[str]) -> list[Span]:
    """conlleval's chunks of one sentence (seqeval `get_entities`, default mode)."""
    out, prev_tag, prev_type, begin = [], "O", "", 0
    for i, chunk in enumerate([*tags, "O"]):
        tag, type_ = chunk[0], chunk[1:].split("-", maxsplit=1)[-1] or "_"
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            out.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return out


# --------------------------------------------------------------------------- strict (seqeval)
# (previous prefixes, current prefixes, type condition): "same", "diff" or "any" — seqeval's tables.
_ANY = "IOBES"
_PATTERNS = {
    "iob1": {
        "allowed": "IOB",
        "start": {("O", "I", "any"), ("I", "I", "diff"), ("B", "I", "any"), ("I", "B", "same"), ("B", "B", "same")},
        "inside": {("B", "I", "same"), ("I", "I", "same")},
        "end": {("I", "I", "diff"), ("I", "O", "any"), ("I", "B", "any"), ("B", "O", "any"), ("B", "I", "diff"),
                ("B", "B", "same")},
    },
    "iob2": {
        "allowed": "IOB",
        "start": {(_ANY, "B", "any")},
        "inside": {("B", "I", "same"), ("I", "I", "same")},
        "end": {("I", "O", "any"), ("I", "I", "diff"), ("I", "B", "any"), ("B", "O", "any"), ("B", "I", "diff"),
                ("B", "B", "any")},
    },
    "bioes": {
        "allowed": "IOBES",
        "start": {(_ANY, "B", "any"), (_ANY, "S", "any")},
        "inside": {("B", "I", "same"), ("B", "E", "same"), ("I", "I", "same"), ("I", "E", "same")},
        "end": {("S", _ANY, "any"), ("E", _ANY, "any")},
    },
}


def _matches(prev: tuple[str, str], cur: tuple[str, str], patterns) -> bool:
    for prev_prefixes, cur_prefixes, cond in patterns:
        same = prev[1] == cur[1]
        if prev[0] in prev_prefixes and cur[0] in cur_prefixes and (
                cond == "any" or (cond == "same") == same):
            return True
    return False


def strict_spans(tags: Sequence[str], scheme: str) -> list[Span]:
    """seqeval's strict-mode entities of one sentence; ValueError on a prefix the scheme lacks."""
    table = _PATTERNS[scheme]
    toks = [(t[0], t[1:].strip("-") or "_") for t in tags] + [("O", "_")]
    for tag, (prefix, _) in zip(tags, toks):
        if prefix not in table["allowed"]:
            raise ValueError(f"tag '{tag}' is not allowed in strict {scheme} scoring")
    out, i, prev = [], 0, ("O", "_")
    while i < len(toks):
        if _matches(prev, toks[i], table["start"]):
            end, inner = i + 1, toks[i]
            while end < len(toks) and _matches(inner, toks[end], table["inside"]):
                inner, end = toks[end], end + 1
            if end == len(toks):  # seqeval's _forward falls off the end: len(tokens) - 1
                end = len(toks) - 2
            if _matches(toks[end - 1], toks[end], table["end"]):
                out.append((toks[i][1], i, end - 1))
            i = end
        else:
            i += 1
        prev = toks[i - 1]
    return out


# --------------------------------------------------------------------------- schemes
def detect_scheme(sequences: Iterable[Sequence[str]]) -> str:
    """The scheme a corpus is written in: bioes if any E-/S-; iob2 if some B- starts an entity
    after O or another type; iob1 if some I- starts an entity; else iob2."""
    b_starts = i_starts = False
    for tags in sequences:
        prev_prefix, prev_type = "O", ""
        for tag in tags:
            prefix, kind = split_tag(tag)
            if prefix in ("E", "S"):
                return "bioes"
            continues = prev_prefix in ("B", "I") and prev_type == kind
            b_starts |= prefix == "B" and not continues
            i_starts |= prefix == "I" and not continues
            prev_prefix, prev_type = prefix, kind
    return "iob1" if i_starts and not b_starts else "iob2"


def scheme_tags(types: Iterable[str], scheme: str) -> list[str]:
    """Every tag of `scheme` for these entity types: O first, then by type."""
    prefixes = "BIES" if scheme == "bioes" else "BI"
    return ["O"] + [f"{p}-{t}" for t in sorted(types) for p in prefixes]


def spans_to_tags(found: Iterable[Span], length: int, scheme: str) -> list[str]:
    """Write non-overlapping spans as a valid tag sequence of `scheme`."""
    tags = ["O"] * length
    last_end = {}  # type -> end of the previous span of that type, for IOB1's B-
    for kind, start, end in sorted(found, key=lambda s: s[1]):
        for k in range(start, end + 1):
            tags[k] = f"I-{kind}"
        if scheme == "iob2" or scheme == "iob1" and last_end.get(kind) == start - 1:
            tags[start] = f"B-{kind}"
        elif scheme == "bioes":
            if start == end:
                tags[start] = f"S-{kind}"
            else:
                tags[start], tags[end] = f"B-{kind}", f"E-{kind}"
        last_end[kind] = end
    return tags


def convert(tags: Sequence[str], scheme: str) -> list[str]:
    """Any (even invalid) sequence -> the same entities, conlleval-read, written validly in `scheme`."""
    return spans_to_tags(spans(tags), len(tags), scheme)


def allowed_transitions(tags: Sequence[str], scheme: str):
    """Which tag may start a sentence, follow another tag, end a sentence, in a valid `scheme`
    sequence: (start [K], transitions [from][to], end [K]) lists of bools."""
    parts = [split_tag(t) for t in tags]

    def follows(prev, cur) -> bool:
        (pp, pt), (cp, ct) = prev, cur
        inside = pp in ("B", "I")  # an entity is open
        if scheme == "bioes":
            if cp in ("I", "E"):
                return inside and pt == ct
            return not inside
        if scheme == "iob2":
            return cp != "I" or (inside and pt == ct)
        return cp != "B" or (inside and pt == ct)  # iob1: B- only right after the same type

    start = [follows(("O", ""), p) for p in parts]
    end = [p[0] not in (("B", "I") if scheme == "bioes" else ()) for p in parts]
    return start, [[follows(a, b) for b in parts] for a in parts], end


# --------------------------------------------------------------------------- scores
def _prf(tp: int, n_pred: int, n_gold: int) -> dict:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "support": n_gold}


def span_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], mode: str = "default",
                scheme: str | None = None) -> dict:
    """Micro precision/recall/F1 over entities and a per-type table, as seqeval reports them.

    mode "default" reads spans as conlleval does; "strict" needs `scheme` (seqeval mode="strict").
    """
    if len(gold) != len(pred) or any(len(g) != len(p) for g, p in zip(gold, pred)):
        raise ValueError("gold and predicted sequences differ in number or length")
    if mode == "strict" and scheme is None:
        raise ValueError("strict scoring needs the scheme")
    read = spans if mode == "default" else (lambda tags: strict_spans(tags, scheme))
    gold_set = {(i, *s) for i, tags in enumerate(gold) for s in read(tags)}
    pred_set = {(i, *s) for i, tags in enumerate(pred) for s in read(tags)}
    hits = gold_set & pred_set
    count = lambda items: Counter(s[1] for s in items)  # noqa: E731  type -> entities
    n_gold, n_pred, n_hit = count(gold_set), count(pred_set), count(hits)
    per_type = {t: _prf(n_hit[t], n_pred[t], n_gold[t]) for t in sorted(n_gold | n_pred)}
    return {**_prf(len(hits), len(pred_set), len(gold_set)), "per_type": per_type}


def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    pairs = [(g, p) for gs, ps in zip(gold, pred) for g, p in zip(gs, ps)]
    return sum(g == p for g, p in pairs) / len(pairs) if pairs else 0.0
