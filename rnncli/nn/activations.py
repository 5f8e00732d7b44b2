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

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from torch import Tensor

# The names, default first; the functions (GATE_ACTIVATIONS, ACTIVATIONS: name -> function) import
# torch and are built on first use, so the config schema reads the names without torch.
GATE_ACTIVATION_NAMES = ("sigmoid", "hard_sigmoid")
ACTIVATION_NAMES = ("tanh", "softsign", "hard_tanh", "relu")
DEFAULT_GATE_ACTIVATION, DEFAULT_ACTIVATION = GATE_ACTIVATION_NAMES[0], ACTIVATION_NAMES[0]


def _functions() -> dict[str, dict[str, Callable[[Tensor], Tensor]]]:
    import torch
    import torch.nn.functional as F

    return {
        "GATE_ACTIVATIONS": {"sigmoid": torch.sigmoid, "hard_sigmoid": F.hardsigmoid},
        "ACTIVATIONS": {"tanh": torch.tanh, "softsign": F.softsign, "hard_tanh": F.hardtanh, "relu": torch.relu},
    }


def __getattr__(name: str):
    """GATE_ACTIVATIONS / ACTIVATIONS, name -> torch function, in the order of the *_NAMES tuples."""
    if name in ("GATE_ACTIVATIONS", "ACTIVATIONS"):
        table = _functions()[name]
        globals().update({name: table})  # built once
        return table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_default(gate_activation: str, activation: str) -> bool:
    """True for sigmoid gates and a tanh candidate: the kernels' equations."""
    return (gate_activation, activation) == (DEFAULT_GATE_ACTIVATION, DEFAULT_ACTIVATION)


def check_activations(gate_activation: str, activation: str) -> None:
    """Raise a ValueError naming an unknown activation and the allowed ones."""
    for key, value, allowed in (("gate_activation", gate_activation, GATE_ACTIVATION_NAMES),
                                ("activation", activation, ACTIVATION_NAMES)):
        if value not in allowed:
            raise ValueError(f"unknown {key} {value!r}: expected one of {', '.join(allowed)}")


def activations_repr(gate_activation: str, activation: str) -> str:
    """', gate_activation=..., activation=...' for a module's repr; '' for the defaults."""
    return "" if is_default(gate_activation, activation) else \
        f", gate_activation={gate_activation!r}, activation={activation!r}"
