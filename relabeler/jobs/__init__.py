"""Ray entrypoints, one module per stage. Only ``_ray.py`` knows Ray's API details."""


class StageError(RuntimeError):
    """A stage cannot run or cannot finish; the message says what to do."""
