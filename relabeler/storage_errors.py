"""A filesystem's failures in words: what was done where, and why it failed, for local
folders and remote stores alike (:class:`relabeler.store.RunStore` and the data readers)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from relabeler.errors import StoreError

# What a remote filesystem raises besides OSError when it cannot be reached or signed in to
# (missing credentials, an unreachable endpoint); optional packages, so collected when present.
REMOTE_ERRORS: tuple[type[BaseException], ...] = ()
try:
    from botocore.exceptions import BotoCoreError

    REMOTE_ERRORS += (BotoCoreError,)
except ImportError:  # pragma: no cover - without s3fs
    pass
try:
    from google.auth.exceptions import GoogleAuthError

    REMOTE_ERRORS += (GoogleAuthError,)
except ImportError:  # pragma: no cover - without gcsfs
    pass
try:  # GCS's answers other than 403, 404 and 412 (gcsfs raises those as OSErrors): a bucket
    # read without credentials is 401 to its anonymous caller, and went up as a traceback
    from gcsfs.retry import HttpError

    REMOTE_ERRORS += (HttpError,)
except ImportError:  # pragma: no cover - without gcsfs
    pass

#: what to set when a store does not know who is asking
CREDENTIALS_HINT = (" (set the storage credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                    "GOOGLE_APPLICATION_CREDENTIALS, or a workload identity)")


def filesystem_error(exc: BaseException, place: str, doing: str) -> str:
    """One line for an OSError or a remote filesystem's sign-in error: what was done where
    (``place``, ``doing``), and why it failed."""
    if isinstance(exc, PermissionError):
        why = "permission denied (read-only or not yours)"
    elif isinstance(exc, FileExistsError | NotADirectoryError):
        why = "a file stands where a folder is needed"
    elif isinstance(exc, IsADirectoryError):
        why = "it is a folder, not a file"
    elif isinstance(exc, FileNotFoundError):
        why = "no such file or folder"
    elif REMOTE_ERRORS and isinstance(exc, REMOTE_ERRORS):
        name = type(exc).__name__
        signed_out = ("Credential" in name or "Auth" in name
                      or getattr(exc, "code", None) == 401)  # gcsfs's HttpError
        why = f"{name}: {exc}{CREDENTIALS_HINT if signed_out else ''}"
    else:
        why = f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
    return f"{place}: cannot {doing}: {why}"


def storage_io(doing: str) -> Callable:
    """Turn a filesystem failure inside a RunStore method into a StoreError naming the run
    directory and the artifact (the method's first argument)."""

    def wrap(method: Callable) -> Callable:
        @functools.wraps(method)
        def inner(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except (OSError, *REMOTE_ERRORS) as exc:
                what = f"{doing} {args[0]!r}" if args and isinstance(args[0], str) else doing
                raise StoreError(filesystem_error(exc, f"run directory {self.uri}", what)
                                 ) from exc

        return inner

    return wrap
