"""The errors rnncli raises for bad input, and the did-you-mean hint every error that names a bad
choice uses.

The library speaks of what its caller wrote: config keys (`model.cell`, with file:line) and
function arguments (`temperature must be > 0`), never of command-line flags. The CLI renders
every `RnncliError` in one place (`rnncli.cli`), as one line, and spells an `ArgumentError`'s
argument as its flag (`--temperature must be > 0`).
"""

import difflib


class RnncliError(Exception):
    """Base class: a problem the user can fix; the message says what and where."""

    exit_code = 1


class ConfigError(RnncliError):
    """A bad config key or value; the message names the key, the file:line and what is allowed."""

    exit_code = 2


class ArgumentError(RnncliError, ValueError):
    """A bad value for an argument of an API function; the message starts with the argument's name.

        ArgumentError("steps", "must be >= 1 (got 0)")   ->  "steps must be >= 1 (got 0)"
    """

    def __init__(self, argument: str, problem: str):
        self.argument, self.problem = argument, problem
        super().__init__(f"{argument} {problem}")


class DataError(RnncliError):
    """A data file that cannot be read as asked; the message names the file and position."""


class RunError(RnncliError):
    """A run directory or checkpoint that cannot be used as asked."""


class TrainingError(RnncliError):
    """Training had to stop (e.g. a NaN loss); the message says which checkpoint is still good."""


# Names other tools use for a config key (PyTorch Lightning, Hugging Face, nanoGPT, OpenNMT) -> ours
OTHER_TOOLS = {
    "learning_rate": "lr", "max_epochs": "epochs", "num_epochs": "epochs", "num_train_epochs": "epochs",
    "n_epochs": "epochs", "max_iters": "max_steps", "scheduler": "schedule", "lr_scheduler": "schedule",
    "grad_clip": "clip_grad_norm", "gradient_clip_val": "clip_grad_norm", "max_grad_norm": "clip_grad_norm",
    "eval_every": "val_every", "eval_steps": "val_every", "val_check_interval": "val_every",
    "log_interval": "log_every", "logging_steps": "log_every", "patience": "early_stopping",
    "hidden_dim": "hidden_size", "n_layers": "num_layers", "emb_dim": "embedding_dim",
    "rnn_type": "cell", "metric_for_best_model": "best_metric",
}


def closest(name: str, allowed) -> str:
    """" Did you mean 'x'?" for the allowed value nearest to `name` (or the one other tools spell
    `name`: learning_rate -> lr), or "" when none is near."""
    allowed = list(allowed)
    if OTHER_TOOLS.get(str(name)) in allowed:
        return f" Did you mean '{OTHER_TOOLS[name]}'?"
    match = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""
