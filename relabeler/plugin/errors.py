"""The plugin's error base, kept here for imports; it lives in :mod:`relabeler.errors`."""

from relabeler.errors import PluginError

__all__ = ["PluginError"]
