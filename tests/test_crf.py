"""The linear-chain CRF against brute force over every tag path."""

import itertools

import pytest
import torch

from rnncli.data import tags as tagging
from rnncli.models.crf import CRF


def _crf(num_tags: int, allowed=None, seed: int = 0) -> CRF:
    torch.manual_seed(seed)
    crf = CRF(num_tags, allowed)
    with torch.no_grad():  # non-trivial start / end scores
        crf.start.normal_()
        crf.end.normal_()
        crf.transitions.normal_()
    return crf


def _brute_force(crf: CRF, emissions: torch.Tensor, length: int):
    """Every path of one sequence: (logsumexp of the scores, best path, best score)."""
    k = emissions.size(-1)
    paths = list(itertools.product(range(k), repeat=length))
    tags = torch.tensor(paths)  # (P, length)
    em = emissions[:length].expand(len(paths), length, k)
    scores = crf.path_score(em, tags, torch.full((len(paths),), length))
    best = int(scores.argmax())
    return torch.logsumexp(scores, 0), list(paths[best]), scores[best]


@pytest.mark.parametrize("constrained", [False, True])
def test_log_partition_and_viterbi_equal_brute_force(constrained):
    tags = tagging.scheme_tags(["A"], "bioes")  # O, B-A, I-A, E-A, S-A
    allowed = tagging.allowed_transitions(tags, "bioes") if constrained else None
    crf = _crf(len(tags), allowed)
    torch.manual_seed(1)
    emissions = torch.randn(4, 5, len(tags))  # (B, T, K)
    lengths = torch.tensor([5, 3, 1, 4])
    log_z = crf.log_partition(emissions, lengths)
    paths, best_scores = crf.decode(emissions, lengths)
    for b, n in enumerate(lengths.tolist()):
        z, best, best_score = _brute_force(crf, emissions[b], n)
        assert log_z[b].item() == pytest.approx(z.item(), abs=1e-4)
        assert paths[b] == best
        assert best_scores[b].item() == pytest.approx(best_score.item(), abs=1e-4)
        if constrained:
            names = [tags[k] for k in paths[b]]
            assert tagging.convert(names, "bioes") == names  # a valid BIOES sequence


def test_nll_is_a_proper_negative_log_probability():
    crf = _crf(3)
    emissions = torch.randn(1, 3, 3)
    paths = torch.tensor(list(itertools.product(range(3), repeat=3)))  # all 27 paths
    nll = crf.neg_log_likelihood(emissions.expand(27, 3, 3), paths, torch.full((27,), 3))
    assert torch.exp(-nll).sum().item() == pytest.approx(1.0, abs=1e-5)
    assert (nll > 0).all()


def test_padded_positions_change_nothing():
    crf = _crf(4)
    torch.manual_seed(2)
    emissions = torch.randn(2, 6, 4)
    tags = torch.randint(0, 4, (2, 6))
    lengths = torch.tensor([6, 3])
    noisy, noisy_tags = emissions.clone(), tags.clone()
    noisy[1, 3:] = 100 * torch.randn(3, 4)  # garbage past the length
    noisy_tags[1, 3:] = 3
    assert torch.equal(crf.log_partition(emissions, lengths), crf.log_partition(noisy, lengths))
    assert torch.equal(crf.path_score(emissions, tags, lengths), crf.path_score(noisy, noisy_tags, lengths))
    assert crf.decode(emissions, lengths)[0] == crf.decode(noisy, lengths)[0]
    alone = crf.log_partition(emissions[1:, :3], lengths[1:])  # the short row without padding
    assert alone.item() == pytest.approx(crf.log_partition(emissions, lengths)[1].item(), abs=1e-6)


def test_constrained_gradients_are_finite():
    tags = tagging.scheme_tags(["A", "B"], "iob2")
    crf = _crf(len(tags), tagging.allowed_transitions(tags, "iob2"))
    emissions = torch.randn(3, 4, len(tags), requires_grad=True)
    gold = torch.tensor([[0, 1, 2, 0], [3, 4, 0, 0], [0, 0, 0, 0]])  # O B-A I-A O / B-B I-B O / O...
    crf.neg_log_likelihood(emissions, gold, torch.tensor([4, 3, 2])).sum().backward()
    assert torch.isfinite(emissions.grad).all() and torch.isfinite(crf.transitions.grad).all()
