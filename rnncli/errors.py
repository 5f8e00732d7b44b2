"""The errors rnncli raises for bad input; the CLI prints their message without a traceback."""


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
