"""Recurrent state and padding masks: the helpers every recurrent module shares.

State is explicit (passed in, returned, never stored on a module) and has one of three shapes:

    step-level    h (B, H)          or (h, c)   what a cell's step takes and returns
    layer-level   h (L*D, B, H)     or (h, c)   what `Recurrent` takes and returns, row layer*D + direction
    per layer     (state_0, state_1, ...)       what `Stepper` steps: one step-level state per layer

The second form, (h, c), belongs to cells whose class says `state_kind = "hc"` (rnncli/nn/cells/);
an LSTM with full gate recurrence (cells/ablation.py, kind "hc+gates") carries (h, c, i, f, o).

Padding: a batch of sequences of `lengths` padded to T steps has a mask that is True at real steps:

    lengths = (3, 5), T = 5:   lengths_mask = [1 1 1 0 0]
                                              [1 1 1 1 1]     (B, T) bool
"""
from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

State = Union[Tensor, tuple[Tensor, ...]]  # h, or (h, c), or (h, c, i, f, o)
StepState = tuple[State, ...]  # one step-level State per layer, bottom first


def zero_state(state_kind: str, shape: tuple[int, ...], device=None, dtype=None) -> State:
    """All zeros of `shape`: h, or (h, c) when state_kind is 'hc', (h, c, i, f, o) for 'hc+gates'."""
    h = torch.zeros(shape, device=device, dtype=dtype)
    parts = {"hc": 2, "hc+gates": 5}.get(state_kind)
    return h if parts is None else (h,) + tuple(torch.zeros_like(h) for _ in range(parts - 1))


def hidden(state: State) -> Tensor:
    """The h of a state (what the layer outputs)."""
    return state[0] if isinstance(state, tuple) else state


def state_row(state: State, k: int) -> State:
    """Row k of a layer-level state (L*D, B, H) -> a step-level state (B, H)."""
    return tuple(s[k] for s in state) if isinstance(state, tuple) else state[k]


def split_state(state: State) -> StepState:
    """Layer-level h (L, B, H) or (h, c) -> one step-level state per layer."""
    if isinstance(state, tuple):
        return tuple(zip(*(s.unbind(0) for s in state)))
    return state.unbind(0)


def join_state(states: StepState | list[State]) -> State:
    """One step-level state per row -> layer-level h (L, B, H) or (h, c). Inverse of `split_state`."""
    if isinstance(states[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*states))
    return torch.stack(states)


def detach_state(state: State | None) -> State | None:
    """Cut the graph behind a state (truncated BPTT). Tensor, (h, c) tuple or None."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def keep_where(mask_t: Tensor, new: State, old: State) -> State:
    """new where mask_t (B, 1) is True, else old: a padded step leaves the state as it was."""
    if isinstance(new, tuple):
        return tuple(torch.where(mask_t, n, o) for n, o in zip(new, old))
    return torch.where(mask_t, new, old)


def lengths_mask(lengths: Tensor, steps: int) -> Tensor:
    """(B, T) bool, True where t < length; on the device of `lengths`."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)
