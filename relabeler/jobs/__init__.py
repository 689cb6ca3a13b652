"""Ray entrypoints, one module per stage. Only ``_ray.py`` knows Ray's API details."""

from relabeler.errors import StageError

__all__ = ["StageError"]
