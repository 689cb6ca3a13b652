"""relabeler: find the wrong labels and thin spots in a text classifier's training data."""

from relabeler._version import __version__

__all__ = ["Run", "find_label_issues", "__version__"]


def __getattr__(name: str):
    # the API loads pandas, pyarrow and the configuration: only when it is asked for
    if name in ("Run", "find_label_issues"):
        from relabeler import api

        return getattr(api, name)
    raise AttributeError(f"module 'relabeler' has no attribute {name!r}")
