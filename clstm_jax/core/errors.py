"""The project's error types: a fault in what the user gave, which the CLI prints as one line (exit 2).

Every other exception is a bug and keeps its traceback. They live here, at the bottom of the layers, so
that any layer can raise them without importing the layer whose input they name.
"""


class ConfigError(ValueError):
    """A config key or value that is not allowed; the message names the key, the value and what is expected."""


class DataError(Exception):
    """A data file or directory is missing or not what was expected; the message names the file and what was
    expected."""


class OutputError(Exception):
    """A directory a command must write cannot be written; the message names it and the OS error."""


class RunError(ValueError):
    """A run directory, published run or model in it is not what a command needs: not a run, not trained yet,
    no model matching a selection, parameters of another shape. The message names it and what was expected."""
