"""The priorities a re-rank gives the waiting review tasks: the order it wants
(:func:`waiting_priorities`), reached by changing as few tasks' values as it can
(:func:`minimal_priorities`): each change is a request to Label Studio."""

from __future__ import annotations

import bisect
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from relabeler.queue_plan import CONTROL, FLAGGED, PRIORITY_STEP


def waiting_priorities(waiting: pd.DataFrame, score_of: Mapping[str, float],
                       taken: Collection[int] = ()) -> dict[str, int]:
    """New priorities of the waiting review tasks (columns id, source, priority): the flagged
    ones take the flagged tasks' positions in order of ``score_of`` (highest first; ties and
    unknown ids keep their order); controls keep theirs. Returns sample id -> priority.

    A position two flagged tasks hold (a re-rank cut short moves some tasks into places the
    others still hold, and leaves their own free) is given once; the other takes a free one:
    the lowest not held by a waiting task or ``taken`` (the other review tasks' priorities),
    else one past them all. So no two tasks share a priority after this re-rank.

    With a ``round`` column, each round's flagged tasks swap slots among themselves: a round
    pushed by ``relabeler next`` stays behind the tasks of the rounds before it."""
    if "round" in waiting.columns and waiting["round"].nunique() > 1:
        out: dict[str, int] = {}
        for _, group in waiting.groupby("round", sort=True):
            rest = waiting.loc[waiting.index.difference(group.index), "priority"]
            out.update(waiting_priorities(group.drop(columns="round"), score_of,
                                          taken=[*taken, *(int(p) for p in rest)]))
        return out
    flagged = waiting[waiting["source"] == FLAGGED].sort_values(["priority", "id"],
                                                                kind="stable")
    slots = sorted(set(int(p) for p in flagged["priority"]))
    if len(slots) < len(flagged):
        held = set(slots) | {int(p) for p in waiting["priority"]} | {int(p) for p in taken}
        top = max(held)
        free = [p for p in range(1, top + 1) if p not in held]
        free += range(top + 1, top + 1 + len(flagged))
        slots = sorted(slots + free[:len(flagged) - len(slots)])
    order = sorted(range(len(flagged)),
                   key=lambda j: -score_of.get(str(flagged["id"].iloc[j]), -np.inf))
    moved = {str(flagged["id"].iloc[j]): slot for j, slot in zip(order, slots, strict=True)}
    controls = waiting[waiting["source"] == CONTROL]
    return {**moved, **{str(x): int(p) for x, p in zip(controls["id"], controls["priority"],
                                                        strict=True)}}


#: the step between the values given to tasks placed before the first or after the last task
#: that keeps its value (push's own step): it leaves room there for later moves without
#: touching other tasks
SPACING = PRIORITY_STEP


def minimal_priorities(current: Sequence[int], taken: Collection[int] = ()) -> list[int]:
    """New priority values for tasks listed in the wanted queue order, given the values they
    hold now (``current``, same order), such that the values rise strictly along the list and
    as few tasks as possible get a new one. ``taken``: values other tasks hold, given to none.

    Priorities are integers (the manifest's column and the task data), so a task placed
    between two neighbours that keep theirs needs a free integer between them. The tasks that
    keep their values are therefore a longest subsequence for which every stretch between two
    of them has enough free integers for the tasks placed there; with room everywhere, that is
    a longest increasing subsequence of ``current``. The others get values spread evenly
    between their new neighbours (leaving room for the next re-rank), or ``SPACING`` apart
    before the first or after the last kept task, where the range is open (values below 1
    included). Where values are packed tight (1, 2, 3, ... as push gave them before it left
    :data:`~relabeler.queue_plan.PRIORITY_STEP` between tasks), moving a task into the middle
    therefore also gives new values to the tasks on one side of it, up to the next gap: there
    is no integer between two neighbours."""
    blocked = sorted({int(v) for v in taken})
    blocked_set = set(blocked)

    def rank(value: int) -> int:
        """The value's place among the integers nobody else holds."""
        return value - bisect.bisect_left(blocked, value)

    def unrank(target: int) -> int:
        """The free integer of that place (the inverse of ``rank``)."""
        value = target
        while True:
            nxt = target + bisect.bisect_right(blocked, value)
            if nxt == value:
                return value
            value = nxt

    # i < j can both keep their values when the free integers between them are enough for the
    # j - i - 1 tasks placed there: rank(v[j]) - rank(v[i]) >= j - i, i.e. rank(v) - index
    # does not fall from one kept task to the next (which also makes the values rise)
    keys = [(i, rank(int(v)) - i) for i, v in enumerate(current) if int(v) not in blocked_set]
    tails: list[int] = []      # the smallest last key of a kept run of each length
    tail_at: list[int] = []    # where that run ends
    before: dict[int, int] = {}
    for i, key in keys:
        k = bisect.bisect_right(tails, key)
        if k:
            before[i] = tail_at[k - 1]
        if k == len(tails):
            tails.append(key)
            tail_at.append(i)
        else:
            tails[k], tail_at[k] = key, i
    kept: list[int] = []
    at = tail_at[-1] if tail_at else None
    while at is not None:
        kept.append(at)
        at = before.get(at)
    kept.reverse()

    out = [int(v) for v in current]
    bounds = [-1, *kept, len(out)]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        count = hi - lo - 1
        if not count:
            continue
        if lo >= 0 and hi < len(out):
            start, room = rank(out[lo]), rank(out[hi]) - rank(out[lo]) - 1
            for t in range(count):
                out[lo + 1 + t] = unrank(start + (t + 1) * (room + 1) // (count + 1))
        elif hi < len(out):  # before the first kept task: downwards from it
            value = out[hi]
            for t in range(hi - 1, lo, -1):
                value -= SPACING
                while value in blocked_set:
                    value -= 1
                out[t] = value
        else:  # after the last kept task (or none kept): upwards from it
            value = out[lo] if lo >= 0 else 0
            for t in range(lo + 1, hi):
                value += SPACING
                while value in blocked_set:
                    value += 1
                out[t] = value
    return out
