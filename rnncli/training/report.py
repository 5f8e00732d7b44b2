"""The fast-path report: which implementation each recurrent stack of a model runs on, and why.

Printed by the trainer at the start of every run and by `rnncli bench`.
"""
from __future__ import annotations

import torch

from rnncli.nn.recurrent import Recurrent
from rnncli.training import precision


def fast_paths(model: torch.nn.Module, device: torch.device, prec: str = "fp32") -> list[str]:
    """One line per recurrent stack: 'name: layers: implementation (why)'."""
    lines = []
    with precision.autocast(prec, device):
        for name, module in model.named_modules():
            if isinstance(module, Recurrent):
                for layers, impl, why in module.paths(device.type):
                    lines.append(f"{name or 'model'}: {layers}: {impl} ({why})")
    return lines
