"""The CLI's shared pieces: the lazy `api`, the one error boundary (`RnncliApp`: every user error is
one line and an exit code), flag names for API arguments, and help-text helpers. The commands live in
rnncli/cli/__init__.py, `rnncli config` in config_commands.py, `eval`'s comparison and heat-map in
evaluation.py.
"""

from __future__ import annotations

from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup, TyperOption

from rnncli.errors import ArgumentError, RnncliError

try:  # newer typer ships its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer uses click itself
    from click.exceptions import UsageError


class _LazyApi:
    """`rnncli.api`, imported on first use: it imports torch (seconds), which `--help`, a usage
    error or `config keys` never need."""

    def __getattr__(self, name: str):
        from rnncli import api as module

        return getattr(module, name)


api = _LazyApi()

# Boolean flags read `--json` in help, not `--json <bool>` (typer's own --help included)
_display_type = TyperOption.display_type_rich
TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else _display_type(self, ctx)

EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT (128 + 2)

# API argument -> the flag (or argument) of the CLI that sets it, where it is not `--arg-name`
FLAGS = {"config_path": "CONFIG", "runs": "RUN", "data_file": "--data", "which": "--checkpoint", "batch_size": "--batch"}


def flag(argument: str) -> str:
    return FLAGS.get(argument, "--" + argument.replace("_", "-"))


def error_line(error: Exception) -> str:
    """The one line the CLI prints for a user error."""
    if isinstance(error, ArgumentError):
        return f"{flag(error.argument)} {error.problem}"
    if isinstance(error, UsageError):
        ctx = error.ctx
        return error.format_message() + (f" (see '{ctx.command_path} --help')" if ctx is not None else "")
    return str(error)


class RnncliApp(TyperGroup):
    """The command group, the CLI's one error boundary: options are parsed in `make_context`, every
    command runs inside `invoke`; a user error from either becomes one line and an exit code."""

    def make_context(self, *args, **kwargs):
        with _one_line_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _one_line_errors():
            return super().invoke(ctx)


@contextmanager
def _one_line_errors():
    try:
        yield
    except (RnncliError, UsageError) as error:
        if type(error).__name__ == "NoArgsIsHelpError":  # `rnncli` or `rnncli config` alone: the help
            raise
        Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(error_line(error))}",
                                                    soft_wrap=True)
        raise typer.Exit(error.exit_code) from None


def examples(*commands: str) -> str:
    """A command's help epilog: example command lines (the README tour's)."""
    return "Examples:\n" + "\n".join(f"  {escape(c)}" for c in commands) + "\nMore in README.md."


SET_HELP = "Override a config key, e.g. --set trainer.lr=0.003 (repeatable)"
INT8_OPTION = typer.Option(False, "--int8", help="int8 weights, CPU inference (dynamic quantization)")
