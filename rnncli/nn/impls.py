"""Which paths (`impl`) a recurrent layer may run, and the option checks that decide them.

    impls_for(cell)        'auto' plus the paths the cell's class declares (bptt, autograd, scan)
    check_impl(...)        the impl a layer runs (an old spelling renamed), or a ValueError saying why not
    check_regularisers()   recurrent_dropout / zoneout rates, refused for scan cells

Used by `Recurrent` (rnncli/nn/recurrent.py) and the config schema (`model.impl`).
"""
from __future__ import annotations

import warnings

from rnncli.nn.cells import cells_where, facts

IMPLS = ("auto", "bptt", "autograd", "scan")
_RENAMED_IMPLS = {"fused": "auto"}  # old spelling -> today's, accepted with a FutureWarning


def impls_for(cell: str, default_activations: bool = True) -> tuple[str, ...]:
    """The `impl` values that cell can run: 'auto', plus each path its class declares (with other than
    sigmoid gates and tanh, only its own step: autograd)."""
    spec = facts(cell)
    if not default_activations:
        return ("auto", "autograd")
    return ("auto",) + ("bptt",) * (spec.bptt_kind is not None) + ("autograd",) * (spec.torch_kernel is None) \
        + ("scan",) * (spec.sequence_kind == "scan")


def check_impl(cell: str, impl: str, default_activations: bool = True, switches: list[str] = (),
                own_cells: bool = False) -> str:
    """The impl to run (an old spelling renamed, with a FutureWarning); a ValueError if it cannot.

    `switches`: the options set that the hand-written BPTT cannot run (e.g. "zoneout=0.1");
    `own_cells`: an option that takes even a torch-kernel cell onto our loops (so impl='autograd' may).
    """
    if impl in _RENAMED_IMPLS:
        warnings.warn(f"impl={impl!r} is deprecated: write impl={_RENAMED_IMPLS[impl]!r} (the same paths)",
                      FutureWarning, stacklevel=3)
        impl = _RENAMED_IMPLS[impl]
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    spec = facts(cell)
    if not default_activations and impl not in impls_for(cell, False):
        raise ValueError(f"impl={impl!r} runs sigmoid gates and tanh; with other activations {cell!r} runs "
                         f"impl='auto' or 'autograd' (its own step)")
    if impl == "bptt" and switches:
        raise ValueError(f"impl='bptt' cannot run {', '.join(switches)}: the hand-written BPTT has no such "
                         f"option; use impl='auto' (the autograd loop)")
    if impl == "bptt" and spec.bptt_kind is None:
        cells = ", ".join(cells_where(lambda c: c.bptt_kind is not None))
        raise ValueError(f"impl='bptt' is for the cells with a hand-written BPTT ({cells}), not {cell!r}")
    if impl == "scan" and spec.sequence_kind != "scan":
        cells = ", ".join(cells_where(lambda c: c.sequence_kind == "scan"))
        raise ValueError(f"impl='scan' is for the cells whose gates read only the input ({cells}), not {cell!r}")
    if impl == "autograd" and spec.torch_kernel is not None and default_activations and not own_cells:
        cells = ", ".join(cells_where(lambda c: c.torch_kernel is None))
        raise ValueError(f"impl='autograd' is for the cells without a torch kernel ({cells}); "
                         f"{cell!r} runs torch's kernel")
    return impl


def check_regularisers(cell: str, recurrent_dropout: float, zoneout: float) -> None:
    """Rates in [0, 1); neither for scan cells (no h_{t-1} matmul to drop, a scan has no step to zone)."""
    for key, rate in (("recurrent_dropout", recurrent_dropout), ("zoneout", zoneout)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{key} must be in [0, 1), got {rate}")
        if rate and facts(cell).sequence_kind == "scan":
            takers = ", ".join(cells_where(lambda c: c.sequence_kind == "loop"))
            raise ValueError(f"{key} does not apply to cell {cell!r} (its gates read only the input); "
                             f"the cells that take it: {takers}")
