"""A linear-chain conditional random field over per-token emission scores.

Lafferty, McCallum & Pereira (2001); as a neural output layer: Lample et al. (2016),
"Neural Architectures for Named Entity Recognition", and Huang, Xu & Yu (2015).

    score(y | x) = start[y_1] + sum_t emit[t, y_t] + sum_{t>1} trans[y_{t-1}, y_t] + end[y_n]
    log p(y | x) = score(y | x) - log Z(x),   log Z = logsumexp over every tag path (forward algorithm)

Sequences are padded on the right; `lengths` (B,) says how many steps are real. Padded steps
leave the forward variables (and the Viterbi scores) unchanged, so a sentence scores the same
alone or in a padded batch. Optional constraints (`allowed`: start, transitions, end as bool
lists, see rnncli.data.tags.allowed_transitions) add a large negative score to forbidden moves,
so Viterbi never returns an invalid BIO / BIOES sequence.

This is a small own implementation (pytorch-crf is unmaintained since 2019); tests check it
against brute force over every path.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnncli.nn.state import lengths_mask

FORBIDDEN = -10000.0  # added to a disallowed move; exp() of it is 0 in float32


class CRF(nn.Module):
    def __init__(self, num_tags: int, allowed=None):
        super().__init__()
        self.num_tags = num_tags
        self.start = nn.Parameter(torch.zeros(num_tags))  # (K,)
        self.end = nn.Parameter(torch.zeros(num_tags))  # (K,)
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # (K from, K to)
        nn.init.uniform_(self.transitions, -0.1, 0.1)
        penalty = [torch.zeros(num_tags), torch.zeros(num_tags, num_tags), torch.zeros(num_tags)]
        if allowed is not None:
            penalty = [torch.where(torch.tensor(a, dtype=torch.bool), 0.0, FORBIDDEN) for a in allowed]
        self.register_buffer("start_penalty", penalty[0], persistent=False)
        self.register_buffer("trans_penalty", penalty[1], persistent=False)
        self.register_buffer("end_penalty", penalty[2], persistent=False)

    def _scores(self) -> tuple[Tensor, Tensor, Tensor]:
        return (self.start + self.start_penalty, self.transitions + self.trans_penalty,
                self.end + self.end_penalty)

    def path_score(self, emissions: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
        """Score of the given tag paths: emissions (B, T, K), tags (B, T), lengths (B,) -> (B,)."""
        start, trans, end = self._scores()
        mask = lengths_mask(lengths, emissions.size(1)).to(emissions.dtype)  # (B, T)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        score = start[tags[:, 0]] + (emit * mask).sum(1)
        score = score + (trans[tags[:, :-1], tags[:, 1:]] * mask[:, 1:]).sum(1)
        last = tags.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)  # (B,)
        return score + end[last]

    def log_partition(self, emissions: Tensor, lengths: Tensor) -> Tensor:
        """log Z by the forward algorithm: (B, T, K) -> (B,)."""
        start, trans, end = self._scores()
        mask = lengths_mask(lengths, emissions.size(1))
        alpha = start + emissions[:, 0]  # (B, K)
        for t in range(1, emissions.size(1)):
            # (B, K from, 1) + (K from, K to) -> logsumexp over from -> (B, K to)
            step = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t : t + 1], step, alpha)
        return torch.logsumexp(alpha + end, dim=1)

    def neg_log_likelihood(self, emissions: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
        """-log p(tags | x) per sequence: (B,)."""
        return self.log_partition(emissions, lengths) - self.path_score(emissions, tags, lengths)

    @torch.no_grad()
    def decode(self, emissions: Tensor, lengths: Tensor) -> tuple[list[list[int]], Tensor]:
        """Viterbi: the best path of each sequence (its own length) and its score (B,)."""
        start, trans, end = self._scores()
        batch, steps, k = emissions.shape
        mask = lengths_mask(lengths, steps)
        score = start + emissions[:, 0]  # (B, K)
        keep = torch.arange(k, device=emissions.device).expand(batch, k)  # identity back-pointer
        pointers = []
        for t in range(1, steps):
            best, arg = (score.unsqueeze(2) + trans).max(dim=1)  # (B, K to) each
            on = mask[:, t : t + 1]
            score = torch.where(on, best + emissions[:, t], score)
            pointers.append(torch.where(on, arg, keep))
        score = score + end
        best_score, last = score.max(dim=1)  # (B,)
        path = [last]
        for arg in reversed(pointers):
            path.append(arg.gather(1, path[-1].unsqueeze(1)).squeeze(1))
        tags = torch.stack(path[::-1], dim=1).tolist()  # (B, T); padded steps repeat the last tag
        return [row[:n] for row, n in zip(tags, lengths.tolist())], best_score
