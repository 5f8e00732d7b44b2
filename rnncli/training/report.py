"""The fast-path report: which implementation each recurrent stack of a model runs on, and why.

Printed by the trainer at the start of every run and by `rnncli bench`.
"""
from __future__ import annotations

import torch

from rnncli.nn.recurrent import Recurrent
from rnncli.training import precision


def fast_paths(model: torch.nn.Module, device: torch.device, prec: str = "fp32") -> list[str]:
    """One line per recurrent stack: 'cell cell (module name), layers: implementation (why)'."""
    lines = []
    with precision.autocast(prec, device):
        for name, module in model.named_modules():
            if isinstance(module, Recurrent):
                for layers, impl, why in module.paths(device.type):
                    cell = module.cell_class.name  # the cell, not the module's name ("rnn" reads as a cell)
                    lines.append(f"{cell} cell ({name or 'model'}), {layers}: {impl} ({why})")
    return lines
