"""Tag schemes (detect, convert, conlleval repairs, constraints) and span scores, checked against seqeval."""

import itertools
import random

import pytest

from rnncli.data import tags as tagging
from rnncli.data.tags import (
    allowed_transitions,
    convert,
    detect_scheme,
    span_scores,
    spans,
    strict_spans,
)

TYPES = ("PER", "LOC", "creative-work")


def random_tags(rng: random.Random, prefixes: str, length: int) -> list[str]:
    """Any sequence over these prefixes (valid or not)."""
    return [p if p == "O" else f"{p}-{rng.choice(TYPES)}" for p in rng.choices(prefixes, k=length)]


def random_spans(rng: random.Random, length: int) -> list[tuple[str, int, int]]:
    out, i = [], 0
    while i < length:
        if rng.random() < 0.4:
            end = min(length - 1, i + rng.randrange(3))
            out.append((rng.choice(TYPES), i, end))
            i = end + 1
        else:
            i += 1
    return out


def test_the_same_entities_in_each_scheme():
    found = [("PER", 0, 1), ("LOC", 5, 6), ("LOC", 7, 7)]
    assert tagging.spans_to_tags(found, 8, "iob1") == [
        "I-PER", "I-PER", "O", "O", "O", "I-LOC", "I-LOC", "B-LOC"]
    assert tagging.spans_to_tags(found, 8, "iob2") == [
        "B-PER", "I-PER", "O", "O", "O", "B-LOC", "I-LOC", "B-LOC"]
    assert tagging.spans_to_tags(found, 8, "bioes") == [
        "B-PER", "E-PER", "O", "O", "O", "B-LOC", "E-LOC", "S-LOC"]


@pytest.mark.parametrize("scheme", tagging.SCHEMES)
def test_convert_round_trips_and_detects_every_scheme(scheme):
    rng = random.Random(0)
    corpus = []
    for _ in range(300):
        found = random_spans(rng, rng.randrange(1, 9))
        n = max([e for _, _, e in found], default=0) + 1 + rng.randrange(2)
        tags = tagging.spans_to_tags(found, n, scheme)
        assert spans(tags) == found
        for other in tagging.SCHEMES:
            assert convert(convert(tags, other), scheme) == tags
        corpus.append(tags)
    assert detect_scheme(corpus) == scheme


def test_detect_scheme_on_small_corpora():
    assert detect_scheme([["I-PER", "I-PER", "O", "I-LOC", "B-LOC"]]) == "iob1"
    assert detect_scheme([["B-PER", "I-PER", "O"], ["O", "B-LOC"]]) == "iob2"
    assert detect_scheme([["O", "I-PER", "O"], ["B-LOC", "O"]]) == "iob2"  # IOB2 with an error in it
    assert detect_scheme([["B-PER", "E-PER", "S-LOC"]]) == "bioes"
    assert detect_scheme([["O", "O"]]) == "iob2"


def test_convert_into_its_own_scheme_repairs_as_conlleval_reads():
    assert tagging.convert(["O", "I-PER", "I-PER", "I-LOC"], "iob2") == ["O", "B-PER", "I-PER", "B-LOC"]
    assert tagging.convert(["B-PER", "I-LOC", "E-LOC", "I-PER"], "bioes") == ["S-PER", "B-LOC", "E-LOC", "S-PER"]
    assert tagging.convert(["B-PER", "B-PER"], "iob1") == ["I-PER", "B-PER"]


def test_split_tag_names_the_bad_tag():
    assert tagging.split_tag("B-creative-work") == ("B", "creative-work")
    for bad in ("X-PER", "PER", "B-", "B_PER"):
        with pytest.raises(ValueError, match=f"tag '{bad}' is not O or one of B-, I-, E-, S- followed by a type"):
            tagging.split_tag(bad)


@pytest.mark.parametrize("scheme", tagging.SCHEMES)
def test_constraints_allow_exactly_the_valid_sequences(scheme):
    tags = tagging.scheme_tags(["A", "B"], scheme)
    start, trans, end = allowed_transitions(tags, scheme)
    for n in (1, 2, 3):
        for seq in itertools.product(range(len(tags)), repeat=n):
            ok = start[seq[0]] and end[seq[-1]] and all(trans[a][b] for a, b in zip(seq, seq[1:]))
            names = [tags[k] for k in seq]
            assert ok == (convert(names, scheme) == names), names


def test_scores_on_a_small_example():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-LOC", "B-PER"]]
    s = span_scores(gold, pred)
    assert (s["precision"], s["recall"]) == (2 / 3, 2 / 3)
    assert s["per_type"]["LOC"] == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    assert s["per_type"]["PER"]["support"] == 0 + 1 and s["per_type"]["PER"]["precision"] == 0.5
    assert tagging.token_accuracy(gold, pred) == 4 / 6
    with pytest.raises(ValueError, match="differ in number or length"):
        span_scores(gold, pred[:1])
    with pytest.raises(ValueError, match="strict scoring needs the scheme"):
        span_scores(gold, pred, mode="strict")


# --------------------------------------------------------------------------- against seqeval
PREFIX_SETS = {"iob1": "OOIIB", "iob2": "OOBBI", "bioes": "OOBIES"}


def _corpus(rng, prefixes, sentences=30):
    return [random_tags(rng, prefixes, rng.randrange(1, 8)) for _ in range(sentences)]


@pytest.mark.parametrize("prefixes", ["OOIIB", "OOBBI", "OOBIES", "BIES"])
def test_default_mode_spans_and_scores_match_seqeval(prefixes):
    seqeval = pytest.importorskip("seqeval.metrics")
    from seqeval.metrics.sequence_labeling import get_entities

    rng = random.Random(len(prefixes))
    for _ in range(200):
        tags = random_tags(rng, prefixes, rng.randrange(1, 10))
        assert spans(tags) == get_entities(tags)
    for _ in range(40):
        gold, pred = _corpus(rng, prefixes), _corpus(rng, prefixes)
        pred = [p[: len(g)] + ["O"] * (len(g) - len(p)) for g, p in zip(gold, pred)]
        _check_against_seqeval(seqeval, gold, pred, {}, span_scores(gold, pred))


@pytest.mark.parametrize("scheme", tagging.SCHEMES)
def test_strict_mode_matches_seqeval(scheme):
    seqeval = pytest.importorskip("seqeval.metrics")
    from seqeval.scheme import IOB1, IOB2, IOBES, Tokens

    cls = {"iob1": IOB1, "iob2": IOB2, "bioes": IOBES}[scheme]
    rng = random.Random(7)
    for _ in range(300):
        tags = random_tags(rng, PREFIX_SETS[scheme], rng.randrange(1, 10))
        expected = [(e.tag, e.start, e.end - 1) for e in Tokens(tags, cls).entities]
        assert strict_spans(tags, scheme) == expected, tags
    for _ in range(30):
        gold, pred = _corpus(rng, PREFIX_SETS[scheme]), _corpus(rng, PREFIX_SETS[scheme])
        pred = [p[: len(g)] + ["O"] * (len(g) - len(p)) for g, p in zip(gold, pred)]
        ours = span_scores(gold, pred, mode="strict", scheme=scheme)
        _check_against_seqeval(seqeval, gold, pred, {"mode": "strict", "scheme": cls}, ours)
    with pytest.raises(ValueError, match="tag 'E-PER' is not allowed in strict iob2 scoring"):
        strict_spans(["B-PER", "E-PER"], "iob2")


def _check_against_seqeval(seqeval, gold, pred, kwargs, ours):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("precision", "recall", "f1"):
            expected = getattr(seqeval, f"{name}_score")(gold, pred, **kwargs)
            assert ours[name] == pytest.approx(expected, abs=1e-12), name
        from seqeval.metrics import sequence_labeling, v1

        if kwargs:  # strict mode
            p, r, f, support = v1.precision_recall_fscore_support(gold, pred, average=None, scheme=kwargs["scheme"])
        else:
            p, r, f, support = sequence_labeling.precision_recall_fscore_support(gold, pred, average=None)
        names = sorted(ours["per_type"])
        assert [ours["per_type"][t]["f1"] for t in names] == pytest.approx(list(f))
        assert [ours["per_type"][t]["precision"] for t in names] == pytest.approx(list(p))
        assert [ours["per_type"][t]["support"] for t in names] == list(support)
