"""The plugin's error base: the CLI reports any of these as one line, without a traceback.

Kept free of imports so ``cli.py`` can catch it without loading the Label Studio SDK.
"""


class PluginError(RuntimeError):
    """Label Studio work cannot go on; the message says why and what to do."""
