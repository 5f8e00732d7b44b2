"""The gate and candidate activations a cell may be built with (`model.gate_activation`,
`model.activation`), by name; the first of each is the default, torch's own.

    sigmoid       σ(x) = 1 / (1 + e^-x)
    hard_sigmoid  clip(x / 6 + 1/2, 0, 1)        torch's F.hardsigmoid (= Keras 3's hard_sigmoid)
    tanh          tanh(x)
    softsign      x / (1 + |x|)
    hard_tanh     clip(x, -1, 1)
    relu          max(x, 0)

A cell built with the defaults calls exactly torch.sigmoid / torch.tanh, so it is bit for bit the
cell it was before these options existed (and its stack still runs torch's or the hand-written
kernel); any other choice runs the cell's own step under autograd.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

GATE_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"sigmoid": torch.sigmoid, "hard_sigmoid": F.hardsigmoid}
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh, "softsign": F.softsign, "hard_tanh": F.hardtanh, "relu": torch.relu,
}
DEFAULT_GATE_ACTIVATION, DEFAULT_ACTIVATION = next(iter(GATE_ACTIVATIONS)), next(iter(ACTIVATIONS))


def is_default(gate_activation: str, activation: str) -> bool:
    """True for sigmoid gates and a tanh candidate: the kernels' equations."""
    return (gate_activation, activation) == (DEFAULT_GATE_ACTIVATION, DEFAULT_ACTIVATION)


def check_activations(gate_activation: str, activation: str) -> None:
    """Raise a ValueError naming an unknown activation and the allowed ones."""
    for key, value, allowed in (("gate_activation", gate_activation, GATE_ACTIVATIONS),
                                ("activation", activation, ACTIVATIONS)):
        if value not in allowed:
            raise ValueError(f"unknown {key} {value!r}: expected one of {', '.join(allowed)}")


def activations_repr(gate_activation: str, activation: str) -> str:
    """', gate_activation=..., activation=...' for a module's repr; '' for the defaults."""
    return "" if is_default(gate_activation, activation) else \
        f", gate_activation={gate_activation!r}, activation={activation!r}"
