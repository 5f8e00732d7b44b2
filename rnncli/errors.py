"""The errors rnncli raises for bad input (the CLI prints their message without a traceback), and
the did-you-mean hint every error that names a bad choice uses."""

import difflib


class RnncliError(Exception):
    """Base class: a problem the user can fix; the message says what and where."""

    exit_code = 1


class ConfigError(RnncliError):
    """A bad config key or value; the message names the key, the file:line and what is allowed."""

    exit_code = 2


class DataError(RnncliError):
    """A data file that cannot be read as asked; the message names the file and position."""


class RunError(RnncliError):
    """A run directory or checkpoint that cannot be used as asked."""


class TrainingError(RnncliError):
    """Training had to stop (e.g. a NaN loss); the message says which checkpoint is still good."""


def closest(name: str, allowed) -> str:
    """" Did you mean 'x'?" for the allowed value nearest to `name`, or "" when none is near."""
    match = difflib.get_close_matches(str(name), list(allowed), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""
