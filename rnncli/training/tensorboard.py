"""TensorBoard event files of a run (`run.tensorboard: true`), in RUN/tensorboard/.

The trainer hands every metrics.jsonl record to `TensorBoardWriter.write` (the same records, the
same steps); a validation record also triggers what only a validation shows:

    every record            scalars     train/<key>, val/<key>   (every number metrics.jsonl has)
    each validation         text        samples                  the task's `samples` (ShowsSamples):
                                                                 generated text, translations beside
                                                                 their references, tagged sentences
                            image       attention                seq2seq (MapsAttention): one validation
                                                                 sentence's attention heat-map
                            histograms  gates/<row>/<gate>       tasks with a probe batch (Probes): the
                            image       gradient_flow            sigmoid gates' values and the curve
                            scalars     health/...               g_t = ‖∂L/∂h_t‖ over PROBE_SEQUENCES
                                                                 validation sequences (rnncli/nn/health.py,
                                                                 what `rnncli diagnose` measures), with
                                                                 g_1/g_T and the saturated-gate fraction

What a task can show comes in as plain callables (the API asks the task registry); this module
knows no task. Only the main process writes (the API opens no writer elsewhere).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import torch

from rnncli.errors import ConfigError
from rnncli.training.health_line import ProbeAtValidation

INSTALL = "pip install 'rnncli[tensorboard]'"


def require(where: str = "run.tensorboard") -> None:
    """A one-line error naming the extra when the tensorboard package is missing."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ConfigError(f"{where}: true needs the tensorboard package: {INSTALL}") from None


class TensorBoardWriter:
    """Scalars for every record; samples, attention, gate histograms and gradient flow at validation."""

    def __init__(self, run_dir: Path, samples: Callable[[], str] | None = None,
                 attention: Callable[[], dict] | None = None, probe: ProbeAtValidation | None = None):
        require()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        self.samples, self.attention, self.probe = samples, attention, probe

    def attach(self, progress) -> None:
        """TensorBoard prints nothing."""

    def write(self, record: dict) -> None:
        """One metrics.jsonl record: its numbers as scalars; a validation record adds the rest."""
        step, split = record["step"], record.get("split", "train")
        for key, value in record.items():
            if key not in ("step", "split") and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{split}/{key}", value, step)
        if split == "val":
            self.validation(step)
        self.writer.flush()

    def validation(self, step: int) -> None:
        if self.samples is not None:
            self.writer.add_text("samples", self.samples(), step)
        if self.attention is not None:
            self.writer.add_image("attention", attention_image(self.attention()), step, dataformats="HWC")
        if self.probe is not None:
            self.health(self.probe.at(step), step)

    def health(self, report: dict, step: int) -> None:
        for row, gates in report["gate_values"].items():
            for gate, values in gates.items():
                self.writer.add_histogram(_tag(f"gates/{row}/{gate}"), values.float(), step)
        for row, ratio in report["ratio_first_last"].items():
            if ratio is not None:
                self.writer.add_scalar(_tag(f"health/g1_over_gT/{row}"), ratio, step)
        if report["saturated"] is not None:
            self.writer.add_scalar("health/saturated_gates", report["saturated"], step)
        self.writer.add_image("gradient_flow", flow_image(report["grad_norms"]), step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _tag(name: str) -> str:
    """'gates/layer 0/forget f' -> 'gates/layer_0/forget_f' (TensorBoard tags without spaces)."""
    return name.replace(" ", "_")


# --------------------------------------------------------------------------- images (matplotlib)
def _figure_pixels(fig) -> torch.Tensor:
    """A matplotlib figure as uint8 pixels (H, W, 3)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    buffer.seek(0)
    image = plt.imread(buffer)  # (H, W, 4) floats in [0, 1]
    return torch.from_numpy((image[..., :3] * 255).astype("uint8"))


def attention_image(amap: dict) -> torch.Tensor:
    """One sentence's attention weights (output tokens x source tokens) as a heat-map image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = torch.tensor(amap["weights"], dtype=torch.float32)  # (T_out, S)
    fig, ax = plt.subplots(figsize=(1 + 0.4 * weights.shape[1], 1 + 0.35 * weights.shape[0]))
    ax.imshow(weights.numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(amap["source"])), amap["source"], rotation=90)
    ax.set_yticks(range(len(amap["output"])), amap["output"])
    fig.tight_layout()
    return _figure_pixels(fig)


def flow_image(norms: dict[str, list[float]]) -> torch.Tensor:
    """g_t = ‖∂L/∂h_t‖ against t, one line per recurrent row, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for row, values in norms.items():
        ax.plot(range(1, len(values) + 1), [max(v, 1e-30) for v in values], label=row)
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel("‖∂L/∂h_t‖")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _figure_pixels(fig)
