"""Reusing a benchmark's stored result only when the arguments that define it are the ones given
now: the result's ``"settings"`` block (``simulation.json`` has one; a benchmark adds the
arguments it defines a result by) is compared with the current arguments, and a difference is
refused, naming each differing argument and the stored file, instead of reprinting an old run.
A script imports it as a sibling (``benchmarks/`` is on ``sys.path`` when one runs)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def differences(stored: Mapping, wanted: Mapping) -> list[str]:
    """``--ARG NOW (stored: THEN)`` for each argument of ``wanted`` (name -> value now) whose
    value ``stored`` records and differs. One it does not record (a result of an older script,
    or a run made by ``relabeler simulate`` itself) is not compared."""
    now = json.loads(json.dumps(dict(wanted)))  # tuples as lists, as the json holds them
    return [f"{_flag(name)} {json.dumps(value)} (stored: {json.dumps(stored[name])})"
            for name, value in now.items() if name in stored and stored[name] != value]


def stored_result(path: Path, wanted: Mapping, *, out_flag: str = "--out",
                  remove: Path | None = None) -> dict | None:
    """The json result at ``path`` when it was made with the arguments ``wanted``; None when
    there is none yet. A result made with other arguments exits with a message naming them,
    ``path`` and what to do (``out_flag``: the script's folder argument; ``remove``: what to
    delete to compute it again, the run folder ``path`` is in by default)."""
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    differ = differences(result.get("settings", {}), wanted)
    if differ:
        raise SystemExit(f"{path} was made with other arguments: {'; '.join(differ)}. Rerun "
                         f"with those to read it, or pass another {out_flag} (or remove "
                         f"{remove or path.parent}) to compute it with these")
    return result


def record_settings(path: Path, wanted: Mapping) -> dict:
    """The json result at ``path`` with ``wanted`` added to its ``"settings"`` block, written
    back, so a later run can tell what it was made with."""
    result = json.loads(path.read_text())
    result["settings"] = {**result.get("settings", {}), **json.loads(json.dumps(dict(wanted)))}
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result
