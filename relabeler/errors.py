"""The project's exceptions, in one place.

Every error a user can cause is a :class:`RelabelerError`: the CLI prints its message as one
line and exits non-zero; anything else is a bug and keeps its traceback. Each subclass keeps the
builtin base it had (``ValueError`` for bad input, ``RuntimeError`` for a stage that cannot go
on), so callers that catch those still work. :func:`listed` joins the names a message lists.
This module imports nothing from the project.
"""


class RelabelerError(Exception):
    """A problem the user can fix; the message names the file, row, key or argument."""


class ConfigError(RelabelerError, ValueError):
    """A configuration problem; the message names the file and the key."""


class DataError(RelabelerError, ValueError):
    """Bad input data: the message names the file, the 0-based data row and the column."""


class ModelError(RelabelerError, ValueError):
    """A model cannot be loaded or does not fit the task; the message says which and why."""


class StoreError(RelabelerError, RuntimeError):
    """An artifact is missing or unreadable; the message names the artifact and the run dir."""


class NoRunError(StoreError):
    """No run directory where one was named, for a step that reads a run made earlier;
    nothing was created."""


class StageError(RelabelerError, RuntimeError):
    """A stage cannot run or cannot finish; the message says what to do."""


class PluginError(RelabelerError, RuntimeError):
    """Label Studio work cannot go on; the message says why and what to do."""


class RoundError(StageError):
    """A round of ``relabeler next`` cannot go on; the message says why and what to do."""


class RoundLockedError(RoundError):
    """Another round holds the run's lock file; the message names the file and its holder."""


class ManifestLockedError(RelabelerError, RuntimeError):
    """Another push, round or re-rank is writing ``studio/manifest.parquet``."""


def listed(items: list[str]) -> str:
    """Items as a message lists them: ``"a"``, ``"a and b"``, ``"a, b and c"``."""
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else items[0]
