"""rnncli.decoding.sampling: sampling draws exactly what torch.multinomial would, and the filters hold."""

from __future__ import annotations

import pytest
import torch

from rnncli.decoding.sampling import next_token


@pytest.mark.parametrize("batch", [1, 3])
def test_sampling_matches_torch_multinomial_draw_for_draw(batch):
    """Same generator seed, same tokens as torch.multinomial(softmax(logits), 1), many draws."""
    logits = torch.randn(batch, 11, generator=torch.Generator().manual_seed(0)) * 2
    for seed in range(200):
        ours, ref = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        for _ in range(5):
            expected = torch.multinomial(torch.softmax(logits, -1), 1, generator=ref).squeeze(-1)
            assert torch.equal(next_token(logits, generator=ours), expected)


def test_sampling_follows_the_distribution():
    probs = torch.tensor([[0.7, 0.2, 0.1]])
    draws = torch.stack([next_token(probs.log(), generator=torch.Generator().manual_seed(s))
                         for s in range(3000)]).flatten()
    freq = torch.bincount(draws, minlength=3).float() / draws.numel()
    assert torch.allclose(freq, probs[0], atol=0.03)


def test_top_k_and_top_p_never_pick_a_filtered_token():
    logits = torch.tensor([[3.0, 2.0, 0.0, -1.0, -5.0]])
    for seed in range(300):
        g = torch.Generator().manual_seed(seed)
        assert next_token(logits, top_k=2, generator=g).item() in (0, 1)
        assert next_token(logits, top_p=0.5, generator=g).item() == 0  # token 0 alone has > 0.5


def test_greedy_is_the_argmax():
    logits = torch.tensor([[0.1, 2.0, -1.0], [5.0, 0.0, 4.9]])
    assert next_token(logits, greedy=True).tolist() == [1, 0]
