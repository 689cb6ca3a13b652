"""Which stages to run again, and in what order, before a stage that waits on another.

A stage waits on the stages of :data:`~relabeler.artifacts.STAGE_UPSTREAM`; one of them that is
unfinished or stale (:meth:`RunStore.stale`) may itself wait on an earlier one. The error of a
verb that cannot start names the earliest of them, so the user does not hop from one verb's
error to the next.
"""

from __future__ import annotations

from relabeler.artifacts import STAGE_UPSTREAM
from relabeler.errors import listed
from relabeler.store import RunStore

#: upstream stages a stage runs without when they never finished (score scores the eval and
#: pool splits only where they were extracted)
OPTIONAL_UPSTREAM: dict[str, tuple[str, ...]] = {"score": ("extract.eval", "extract.pool")}

#: the verbs ``relabeler run --no-push`` runs, in order; each redoes its stage when unfinished
#: or stale
RUN_VERBS = ("train", "extract", "score", "attribute")


def verb_of(stage: str) -> str:
    """The verb that makes ``stage`` (``extract.train`` -> ``extract``)."""
    return stage.split(".", 1)[0]


def stages_to_redo(store: RunStore, stage: str) -> list[str]:
    """The stages to run (again) before ``stage`` is done, earliest first, ``stage`` last:
    those up its chain of upstream stages that are unfinished or stale. [] when it is done."""
    out: list[str] = []

    def walk(name: str) -> None:
        if name in out or store.stage_done(name):
            return
        recorded = (store.stage_info(name) or {}).get("upstream") or {}
        for upstream in STAGE_UPSTREAM.get(name, ()):
            if (upstream in OPTIONAL_UPSTREAM.get(name, ()) and upstream not in recorded
                    and store.stage_info(upstream) is None):
                continue
            walk(upstream)
        out.append(name)

    walk(stage)
    return out


def run_first(store: RunStore, stage: str, needs: str) -> str:
    """The message for a verb that cannot start because ``stage`` is not done: ``needs`` (what
    the verb needs), then the earliest stage to run again (stale, with the reason, or
    unfinished), the verbs after it, and ``relabeler run --no-push`` where it redoes them."""
    chain = stages_to_redo(store, stage) or [stage]
    first = chain[0]
    verbs = list(dict.fromkeys(verb_of(s) for s in chain))
    reason = store.stale(first)
    if reason is not None:
        message = f"{needs} ({first} is stale: {reason})"
    elif first != stage:
        message = f"{needs} ({first} is unfinished)"
    else:
        message = needs
    message += f": run `relabeler {verbs[0]} --run {store.uri}` first"
    if len(verbs) > 1:
        message += ", then " + listed(verbs[1:])
    if any(verb in RUN_VERBS for verb in verbs):
        message += (f" (or `relabeler run --run {store.uri} --no-push`, which redoes every "
                    f"stage from train to attribute that is unfinished or stale)")
    return message
