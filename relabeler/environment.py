"""What a process runs a stage with (library versions and device), as each stage's marker
records it for an audit: nothing compares it, so an upgrade makes no stage stale."""

from __future__ import annotations

import functools
import importlib.metadata
import sys

#: the distributions a marker records the versions of (:func:`environment`), by the name it
#: gives each: faiss and ray only when the process imported them, each under the first of its
#: distribution names that is installed
_ALWAYS = {"numpy": ("numpy",), "torch": ("torch",), "transformers": ("transformers",)}
_IF_IMPORTED = {"faiss": ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11",
                          "faiss"),
                "ray": ("ray",)}


def environment() -> dict[str, str]:
    """What this process runs a stage with, as its marker records it: the versions of python,
    numpy, torch, transformers, and of faiss and ray where the process imported them (a
    stage that never used one says nothing of it), and ``device``: the name of the CUDA GPU
    where this process put torch on one, else ``cpu`` (work a stage sends to Ray actors runs
    on theirs). Read from the installed packages' metadata: nothing is imported for it."""
    found = {"python": sys.version.split()[0]}
    wanted = {**_ALWAYS, **{name: dists for name, dists in _IF_IMPORTED.items()
                            if name in sys.modules}}
    for name, dists in wanted.items():
        version = _installed_version(dists)
        if version is not None:
            found[name] = version
    found["device"] = _device()
    return found


@functools.cache
def _installed_version(dists: tuple[str, ...]) -> str | None:
    """The version of the first of ``dists`` that is installed (cached: the metadata is read
    from disk, and a process keeps the packages it started with)."""
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _device() -> str:
    # only a torch already imported and a CUDA context already made are asked: initialising
    # CUDA here would cost seconds, and forked workers could no longer use it
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is not None and cuda.is_initialized():
        return f"cuda ({cuda.get_device_name()})"
    return "cpu"
