"""Weight initialisation for recurrent layers: orthogonal / Xavier per gate block, forget bias.

Defaults (what `rnncli.nn.recurrent.Recurrent` applies):
  * weight_hh: each H x H gate block orthogonal (Saxe et al. 2014, "Exact solutions to the
    nonlinear dynamics of learning in deep linear neural networks"),
  * weight_ih: each H x I gate block Xavier/Glorot uniform (Glorot & Bengio 2010),
  * biases zero, except an effective forget-gate bias of `forget_bias` for cells with a forget
    gate (Gers et al. 2000; Jozefowicz et al. 2015). torch keeps two biases and only their sum
    counts, so the forget block of bias_ih holds `forget_bias` and that of bias_hh holds 0.
    The cell class says which block that is (`forget_block`: 1 in i, f, g, o; 0 in CIFG's f, g, o);
    cells without one (rnn, gru) ignore forget_bias.
  * peephole weights (weight_ci, weight_cf, weight_co) are left as the cell made them,
    ~ U(-1/sqrt(H), 1/sqrt(H)).
  * the layer-normalised cells (ln_lstm, ln_gru) add their biases after the normalisations, as the
    betas ln_ih_bias / ln_hh_bias: these are reset like bias_ih / bias_hh; their gains stay at 1.
"pytorch" leaves that weight matrix at torch's default U(-1/sqrt(H), 1/sqrt(H)); biases are
always reset as above (set forget_bias=0 for all-zero biases).

Parameters are found by name, so this works on `nn.RNN` / `nn.LSTM` / `nn.GRU` (weight_hh_l0,
weight_hh_l0_reverse, ...) and on our cells (cells.0.weight_hh, ...) alike.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rnncli.nn.cells import facts

if TYPE_CHECKING:  # torch is imported where a weight is initialised: the config schema reads the names alone
    from torch import Tensor, nn

RECURRENT_INITS = ("orthogonal", "xavier_uniform", "pytorch")  # "pytorch" = leave torch's default
INPUT_INITS = ("xavier_uniform", "xavier_normal", "pytorch")

_BLOCK_INITS = {"orthogonal": "orthogonal_", "xavier_uniform": "xavier_uniform_", "xavier_normal": "xavier_normal_"}


def _check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {key} {value!r}: expected one of {', '.join(allowed)}")


def _init_blocks_(weight: Tensor, hidden_size: int, how: str) -> None:
    """Initialise each (H, in) gate block of a (G*H, in) matrix separately."""
    if how == "pytorch":
        return
    if weight.shape[0] % hidden_size:
        raise ValueError(
            f"weight of shape {tuple(weight.shape)} is not a stack of {hidden_size}-row gate blocks"
        )
    from torch import nn

    for block in weight.split(hidden_size, dim=0):  # views into `weight`
        getattr(nn.init, _BLOCK_INITS[how])(block)


def _init_bias_(bias: Tensor, hidden_size: int, forget: int | None, value: float) -> None:
    bias.zero_()
    if forget is not None:
        bias[forget * hidden_size : (forget + 1) * hidden_size] = value


def init_recurrent_(
    module_or_params: nn.Module | Iterable[tuple[str, Tensor]],
    cell: str,
    hidden_size: int,
    recurrent_init: str = "orthogonal",
    input_init: str = "xavier_uniform",
    forget_bias: float = 1.0,
) -> None:
    """Initialise, in place, every weight_ih* / weight_hh* / bias_ih* / bias_hh* parameter.

    `module_or_params` is a module or an iterable of (name, parameter) pairs; the last dotted
    component of each name decides what it is. Other parameters (peepholes) are left alone.
    """
    import torch

    forget = facts(cell).forget_block  # also validates the cell name
    _check_choice("recurrent_init", recurrent_init, RECURRENT_INITS)
    _check_choice("input_init", input_init, INPUT_INITS)
    named = (
        module_or_params.named_parameters()
        if isinstance(module_or_params, torch.nn.Module)
        else module_or_params
    )
    with torch.no_grad():
        for name, param in named:
            leaf = name.rsplit(".", 1)[-1]
            if leaf.startswith("weight_hh"):
                _init_blocks_(param, hidden_size, recurrent_init)
            elif leaf.startswith("weight_ih"):
                _init_blocks_(param, hidden_size, input_init)
            elif leaf.startswith("bias_ih") or leaf == "ln_ih_bias":  # ln_*: the LN cells' betas
                _init_bias_(param, hidden_size, forget, forget_bias)
            elif leaf.startswith("bias_hh") or leaf == "ln_hh_bias":
                _init_bias_(param, hidden_size, forget, 0.0)
