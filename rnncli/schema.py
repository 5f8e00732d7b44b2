"""The config schema: `Field` (one key's type, default, allowed values, help and when it applies)
and the sections every task shares (`trainer`, `run`, the recurrent `model` keys).

Each task module declares its own `SCHEMA` from these pieces (rnncli/tasks/); `rnncli.config`
validates a YAML file against the task's schema. `recurrent_kwargs` is the one place a resolved
`model` section becomes `Recurrent` keyword arguments (YAML key = argument name), and
`check_split` the one check of a `data.split` list.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from rnncli.errors import ConfigError
from rnncli.nn.activations import (
    ACTIVATION_NAMES,
    DEFAULT_ACTIVATION,
    DEFAULT_GATE_ACTIVATION,
    GATE_ACTIVATION_NAMES,
    is_default,
)
from rnncli.nn.cells import ABLATIONS, CELL_NAMES, NONLINEARITIES, cells_where, check_ablate
from rnncli.nn.init import INPUT_INITS, RECURRENT_INITS
from rnncli.nn.impls import IMPLS, impls_for

SECTIONS = ("data", "model", "trainer", "run")


@dataclass(frozen=True)
class Field:
    """One config key: its type, default, allowed values and when it applies."""

    kind: str  # "int" | "float" | "str" | "bool" | "floats" | "strs" (a string or list) | "int|str"
    default: Any
    help: str = ""
    choices: tuple | None = None
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    when: Callable[[dict], bool] | None = None  # gets the resolved config (all sections)
    when_text: str = ""  # human form of `when`, e.g. "model.cell is rnn"
    renamed: dict[str, str] | None = None  # old spelling -> today's, accepted with a FutureWarning
    path: bool = False  # a file path: relative ones are read from the config file's directory


Schema = dict[str, dict[str, Field]]  # section -> key -> Field


# --------------------------------------------------------------------------- shared fields
def _is(key: str, *values: str) -> Callable[[dict], bool]:
    section, name = key.split(".")
    return lambda c: c[section].get(name) in values


def _for_cells(test: Callable[[type], bool]) -> dict:
    """`when` and `when_text` of a key that applies to the cells whose class passes `test`."""
    cells = cells_where(test)
    text = "model.cell is " + (cells[0] if len(cells) == 1 else "one of " + ", ".join(cells))
    return {"when": _is("model.cell", *cells), "when_text": text}


def recurrent_model_fields(bidirectional: bool = True) -> dict[str, Field]:
    """Model keys shared by every task that uses a zoo cell."""
    fields = {
        "cell": Field("str", "lstm", "recurrent cell", choices=CELL_NAMES),
        "hidden_size": Field("int", 256, "hidden units per layer and direction", min=1),
        "num_layers": Field("int", 1, "stacked recurrent layers", min=1),
        "dropout": Field("float", 0.0, "dropout between layers and before the output", min=0, max=0.99),
        "nonlinearity": Field(
            "str", "tanh", "Elman RNN activation", choices=NONLINEARITIES,
            **_for_cells(lambda c: len(c.nonlinearities) > 1),
        ),
        "recurrent_init": Field(
            "str", "orthogonal", "init of W_hh (per gate block)",
            choices=RECURRENT_INITS,
        ),
        "input_init": Field(
            "str", "xavier_uniform", "init of W_ih",
            choices=INPUT_INITS,
        ),
        "forget_bias": Field(
            "float", 1.0, "effective forget-gate bias (b_ih + b_hh)",
            **_for_cells(lambda c: c.forget_block is not None),
        ),
        "impl": Field(
            "str", "auto", "auto: the cell's fastest path here (bptt for the LSTM family, the scan for cells whose gates "
            "read only the input); bptt: hand-written BPTT; scan: the scan over time (sequential linear on the "
            "CPU, parallel log-space elsewhere); autograd: plain loop (reference)",
            choices=IMPLS, renamed={"fused": "bptt"},
            # only cells without a torch kernel have a path to choose (`check_model` checks the pair), and
            # only without ablations (they run the autograd loop)
            **_and_no_ablation(_for_cells(lambda c: c.torch_kernel is None)),
        ),
        "gate_activation": Field(
            "str", DEFAULT_GATE_ACTIVATION, "activation of the gates (hard_sigmoid: clip(x/6 + 1/2, 0, 1)); "
            "other than sigmoid runs the cell's own step (autograd)",
            choices=GATE_ACTIVATION_NAMES, **_for_cells(lambda c: c.configurable_activations),
        ),
        "activation": Field(
            "str", DEFAULT_ACTIVATION, "activation of the candidate and of the cell output; other than tanh "
            "runs the cell's own step (autograd)",
            choices=ACTIVATION_NAMES, **_for_cells(lambda c: c.configurable_activations),
        ),
        "recurrent_dropout": Field(
            "float", 0.0, "variational dropout on h(t-1) in the recurrent matmul, one mask per sequence",
            min=0, max=0.99, **_for_cells(lambda c: c.sequence_kind == "loop"),
        ),
        "zoneout": Field("float", 0.0, "zoneout rate: each state unit keeps its last value with this "
                         "probability (expectation at evaluation)", min=0, max=0.99,
                         **_for_cells(lambda c: c.sequence_kind == "loop")),
        "ablate": Field(
            "strs", [], "Greff et al.'s LSTM ablations (none: the full cell)", choices=ABLATIONS + ("none",),
            **_for_cells(lambda c: bool(c.ablations)),
        ),
    }
    if bidirectional:
        fields["bidirectional"] = Field("bool", False, "run a second layer right-to-left")
    return fields


def _and_no_ablation(applies: dict) -> dict:
    """`when` / `when_text` of a key that applies as `applies` says and only while model.ablate is empty
    (the hand-written BPTT has no ablations: those layers take the autograd loop)."""
    when = applies["when"]
    return {"when": lambda c: when(c) and not _ablations(c["model"].get("ablate")),
            "when_text": applies["when_text"] + " and model.ablate is empty"}


def _ablations(value) -> list:
    """model.ablate as given (a name, a list, or unset) without 'none': what is actually ablated."""
    value = [] if value is None else [value] if isinstance(value, str) else value
    return [name for name in value if name != "none"]


def check_recurrent(model: dict, where: Callable[..., str]) -> None:
    """Rules of the recurrent keys the per-key schema cannot express (resolved `model` section, in place):
    model.ablate 'none' means []; each ablation must suit model.cell."""
    if "ablate" not in model:
        return
    ablate = model["ablate"]
    if "none" in ablate:
        if len(ablate) > 1:
            raise ConfigError(f"{where('model', 'ablate')}: model.ablate = {ablate}: 'none' cannot be combined "
                              f"with ablations")
        ablate = []
    try:
        model["ablate"] = list(check_ablate(model["cell"], ablate))
    except ValueError as e:
        raise ConfigError(f"{where('model', 'ablate')}: model.ablate: {e}") from None


RECURRENT_KEYS = tuple(recurrent_model_fields(bidirectional=True))  # = rnncli.nn.recurrent.Recurrent arguments


def recurrent_kwargs(model: dict) -> dict:
    """The `Recurrent` keyword arguments of a resolved `model` section: every recurrent key it holds.

    Keys that do not apply to the cell were dropped when the config was resolved, so the layer's
    own default stands for them. Every task builds its recurrent layers through this function.
    """
    return {key: model[key] for key in RECURRENT_KEYS if key in model}


def check_model(cfg: dict, where: Callable[..., str]) -> None:
    """Cross-key rules of the recurrent `model` keys: `model.impl` must be a path the cell has (with
    other than sigmoid gates and tanh, only its own step); model.ablate (`check_recurrent`)."""
    model = cfg.get("model", {})
    check_recurrent(model, where)
    if "impl" not in model or "cell" not in model:
        return
    default = is_default(model.get("gate_activation", DEFAULT_GATE_ACTIVATION),
                         model.get("activation", DEFAULT_ACTIVATION))
    allowed = impls_for(model["cell"], default)
    if model["impl"] not in allowed:
        how = "" if default else f" with gate_activation {model['gate_activation']}, activation {model['activation']}"
        raise ConfigError(f"{where('model', 'impl')}: model.impl = '{model['impl']}' is not a path of cell "
                          f"'{model['cell']}'{how}. Allowed for it: {', '.join(allowed)}")


def check_split(split: list[float], where: str, example: list[float]) -> None:
    """`data.split` must be [train, val, test] fractions summing to 1, train and val > 0."""
    if len(split) != 3 or abs(sum(split) - 1) > 1e-6 or split[0] == 0 or split[1] == 0:
        raise ConfigError(f"{where}: data.split = {split}: expected [train, val, test] fractions summing to 1, "
                          f"with train and val > 0 (e.g. {example})")


TRAINER_FIELDS: dict[str, Field] = {
    "seed": Field("int", 1234, "one seed fixes data order, init, dropout and sampling"),
    "device": Field("str", "auto", "where to train", choices=("auto", "cpu", "cuda", "mps")),
    "precision": Field("str", "fp32", "fp32, or bf16 / fp16 mixed precision (fp32 master weights)",
                       choices=("fp32", "bf16", "fp16")),
    "optimizer": Field("str", "adam", "optimizer", choices=("adam", "adamw", "sgd", "rmsprop")),
    "lr": Field("float", 2e-3, "peak learning rate", min=0),
    "weight_decay": Field("float", 0.0, "L2 / decoupled weight decay", min=0),
    "momentum": Field(
        "float", 0.9, "momentum", min=0, max=1,
        when=_is("trainer.optimizer", "sgd", "rmsprop"), when_text="trainer.optimizer is sgd or rmsprop",
    ),
    "schedule": Field("str", "constant", "lr schedule", choices=("constant", "step", "cosine", "plateau")),
    "warmup_steps": Field("int", 0, "linear warmup from 0 to lr", min=0),
    "step_size": Field(
        "int", 1000, "steps between lr decays", min=1,
        when=_is("trainer.schedule", "step"), when_text="trainer.schedule is step",
    ),
    "gamma": Field(
        "float", 0.5, "lr decay factor", min=0, max=1,
        when=_is("trainer.schedule", "step", "plateau"), when_text="trainer.schedule is step or plateau",
    ),
    "min_lr": Field(
        "float", 0.0, "final lr of the cosine schedule", min=0,
        when=_is("trainer.schedule", "cosine"), when_text="trainer.schedule is cosine",
    ),
    "plateau_patience": Field(
        "int", 1, "validations without improvement before the lr decays", min=0,
        when=_is("trainer.schedule", "plateau"), when_text="trainer.schedule is plateau",
    ),
    "clip_grad_norm": Field("float", 5.0, "clip the global gradient norm (null: off)", nullable=True, min=0),
    "clip_grad_value": Field("float", None, "clip each gradient element (null: off)", nullable=True, min=0),
    "batch_size": Field("int", 32, "sequences per batch (the global batch, however many processes share it)",
                        min=1),
    "accumulate": Field("int", 1, "gradient accumulation: each batch runs as this many pieces, one backward each, "
                        "with the same result as the whole batch", min=1),
    "epochs": Field("int", 10, "passes over the training data (null: use max_steps)", nullable=True, min=1),
    "max_steps": Field("int", None, "stop after this many optimizer steps", nullable=True, min=1),
    "val_every": Field("int|str", 500, "validate (and save) every N steps, or at each epoch end (epoch); "
                       "and after the last step", choices=("epoch",), min=1),
    "log_every": Field("int", 50, "log training metrics every N steps", min=1),
    "early_stopping": Field(
        "int", None, "stop after N validations without improvement (null: off)", nullable=True, min=1
    ),
}

RUN_FIELDS: dict[str, Field] = {
    "name": Field("str", None, "run directory name (null: timestamp)", nullable=True),
    "dir": Field("str", "runs", "parent directory of run directories"),
    "overwrite": Field("bool", False, "start afresh even if the run directory has checkpoints"),
    "tensorboard": Field("bool", False, "write TensorBoard event files to RUN/tensorboard/: every metrics.jsonl "
                         "scalar, and at each validation samples, attention, gate histograms and gradient flow "
                         "(pip install 'rnncli[tensorboard]')"),
}


# --------------------------------------------------------------------------- upper bounds
# Every number a config accepts is bounded, so that no value reaches torch or Python as an
# OverflowError, an inf or a allocation no machine can make. A field's own min/max win; these
# fill in what a field leaves open. The bounds are generous (far past any published RNN) but
# each fits one real machine:
LIMITS: dict[str, tuple[float, float]] = {
    # widths: an LSTM's W_hh at 32,768 units is 4 x 32,768^2 fp32 = 16 GiB, what one large
    # accelerator holds with its gradient and Adam state still to come
    "hidden_size": (1, 32_768), "decoder_hidden_size": (1, 32_768), "embedding_dim": (1, 32_768),
    "char_embedding_dim": (1, 32_768), "char_hidden_size": (1, 32_768),
    "num_layers": (1, 256), "decoder_num_layers": (1, 256), "char_kernel_size": (1, 256),  # deeper never trains
    "batch_size": (1, 1_048_576),  # 2^20 sequences per step
    "bptt": (1, 1_048_576), "T": (2, 1_048_576),  # 2^20 time steps per window / sequence
    # seeds: Python's, torch's and numpy's generators all take 0 .. 2^32-1 on every platform
    "seed": (0, 2**32 - 1), "split_seed": (0, 2**32 - 1),
    # an initial forget bias past +-100 saturates sigmoid in every precision (and 1e300 is inf in fp32)
    "forget_bias": (-100.0, 100.0),
    "lr": (0.0, 1e3),
}
MAX_COUNT = 10**12  # any other integer (steps, epochs, sizes of sets, lengths): more than a run ever does
MAX_FLOAT = 1e12  # any other number: finite in fp32 (3.4e38) with room for the arithmetic done on it


def bounded(key: str, field: Field) -> Field:
    """`field` with a lower and upper bound on every number: its own, else LIMITS, else the defaults."""
    if field.kind not in ("int", "float", "floats"):
        return field
    low, high = LIMITS.get(key, (-MAX_COUNT, MAX_COUNT) if field.kind == "int" else (-MAX_FLOAT, MAX_FLOAT))
    return replace(field, min=low if field.min is None else field.min, max=high if field.max is None else field.max)
