"""What each registered cell is, as plain data: the facts a config is checked against, without torch.

The config schema (`model.cell`, which keys apply to which cell, `model.ablate`, `model.impl`) needs
to know what each cell declares, and a config error must answer before torch is imported (that
takes seconds). Each cell class still declares these facts itself (rnncli/nn/cells/<cell>.py, the
`Cell` protocol says what each means); this table repeats the ones the schema reads, in registry
order, and tests/test_fast_config.py checks that every entry equals its class.

    CELL_NAMES, NONLINEARITIES, ABLATIONS     what model.cell / nonlinearity / ablate accept
    facts(cell), cells_where(test)            a cell's facts; the cells whose facts pass `test`
    check_cell_name, check_ablate             the torch-free checks (ValueError naming the value)
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

# Greff et al.'s ablations (rnncli/nn/cells/ablation.py), in the order they are applied and listed
ABLATIONS = ("no_input_gate", "no_forget_gate", "no_output_gate", "no_input_activation",
             "no_output_activation", "no_peepholes", "full_gate_recurrence")
_LSTM_ABLATIONS = ABLATIONS[:5] + ABLATIONS[6:]


@dataclass(frozen=True)
class CellFacts:
    """The class attributes of one cell that the config reads (same names as on the class)."""

    name: str
    gate_names: tuple[str, ...]
    forget_block: int | None
    nonlinearities: tuple[str, ...]
    torch_kernel: str | None  # the name of the torch.nn class (nn.LSTM -> "LSTM"), or None
    bptt_kind: str | None
    ablations: tuple[str, ...]
    sequence_kind: str  # "loop" | "scan"
    configurable_activations: bool


_T = ("tanh",)
CATALOG: dict[str, CellFacts] = {facts.name: facts for facts in (
    #          name             gate_names            forget  nonlin.           torch   bptt        ablations
    CellFacts("rnn",           ("h",),               None,   ("tanh", "relu"), "RNN",  None,       (),
              "loop", False),
    CellFacts("lstm",          ("i", "f", "g", "o"), 1,      _T,               "LSTM", "lstm",     _LSTM_ABLATIONS,
              "loop", True),
    CellFacts("gru",           ("r", "z", "n"),      None,   _T,               "GRU",  None,       (),
              "loop", True),
    CellFacts("peephole_lstm", ("i", "f", "g", "o"), 1,      _T,               None,   "peephole", ABLATIONS,
              "loop", True),
    CellFacts("cifg_lstm",     ("f", "g", "o"),      0,      _T,               None,   "cifg",
              ("no_output_gate", "no_input_activation", "no_output_activation"), "loop", True),
    CellFacts("mingru",        ("z", "h"),           None,   _T,               None,   None,       (),
              "scan", False),
    CellFacts("minlstm",       ("i", "f", "h"),      1,      _T,               None,   None,       (),
              "scan", False),
    CellFacts("ln_lstm",       ("i", "f", "g", "o"), 1,      _T,               None,   "ln_lstm",  (),
              "loop", False),
    CellFacts("ln_gru",        ("r", "z", "n"),      None,   _T,               None,   "ln_gru",   (),
              "loop", False),
)}
CELL_NAMES = tuple(CATALOG)
NONLINEARITIES = tuple(dict.fromkeys(n for facts in CATALOG.values() for n in facts.nonlinearities))


def check_cell_name(cell: str) -> None:
    """Raise a ValueError naming the bad cell, the allowed ones and the closest match."""
    if cell in CATALOG:
        return
    close = difflib.get_close_matches(str(cell), CELL_NAMES, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown cell {cell!r}: expected one of {', '.join(CELL_NAMES)}{hint}")


def facts(cell: str) -> CellFacts:
    """The facts of the cell registered under `cell` (a ValueError with the closest match if none is)."""
    check_cell_name(cell)
    return CATALOG[cell]


def cells_where(test: Callable[[CellFacts], bool]) -> tuple[str, ...]:
    """Names of the registered cells whose facts pass `test`, e.g. those with a forget gate."""
    return tuple(name for name, cell_facts in CATALOG.items() if test(cell_facts))


def check_ablate(cell: str, ablate) -> tuple[str, ...]:
    """The ablations in ABLATIONS' order; a ValueError naming the first that `cell` cannot take and
    why: an impossible combination (CIFG's coupled gates), or which cells take it."""
    known = facts(cell)
    for name in ablate:
        if name not in ABLATIONS:
            close = difflib.get_close_matches(str(name), ABLATIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown ablation {name!r}: expected some of {', '.join(ABLATIONS)}{hint}")
        if name in known.ablations:
            continue
        coupled = "i" not in known.gate_names and known.forget_block is not None  # CIFG: i = 1 - f
        if coupled and name in ("no_input_gate", "no_forget_gate"):
            raise ValueError(f"ablation {name!r} is impossible with cell {cell!r}: its input gate is tied "
                             f"to its forget gate (i = 1 - f), so neither can be removed alone")
        takers = ", ".join(cells_where(lambda c: name in c.ablations)) or "none"
        raise ValueError(f"ablation {name!r} does not apply to cell {cell!r}; the cells that take it: {takers}")
    return tuple(a for a in ABLATIONS if a in ablate)
