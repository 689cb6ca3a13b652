"""Counterexamples to shortcuts: training samples that contain a shortcut token but are
labelled or predicted as another class, sent to the acquisition project for a label.

A shortcut (``scores/shortcuts.parquet``: a token far more frequent in one class than the
prior explains) is unlearned by the samples that break it: a "free" in a ham message. A person
confirming their labels makes them count (a wrong label there is the shortcut's own doing)
and shows how far the token really goes with the class. ``studio.counterexamples`` (0 = off)
sets how many the acquisition project holds; they queue behind the acquired pool samples,
taken in turn from each shortcut in rank order, within one shortcut the sample the model
pulls most towards the shortcut's class first. Manifest source ``counterexample``; a sample
already sent anywhere is not sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.queue_plan import COUNTEREXAMPLE
from relabeler.selectors.shortcuts import contains_token
from relabeler.store import RunStore

log = logging.getLogger(__name__)


def counterexample_picks(shortcuts: pd.DataFrame, texts: Mapping[str, str],
                         labels: Mapping[str, str], probs: Mapping[str, np.ndarray],
                         classes: Sequence[str], *, count: int,
                         exclude: set[str] = frozenset()) -> pd.DataFrame:
    """Up to ``count`` counterexamples (columns id, token, class, pull): round robin over the
    ``shortcuts`` (columns token, class, rank) in rank order; a sample qualifies for a shortcut
    when its text contains the token and its label or the model's prediction (argmax of
    ``probs``, where known) is another class. ``pull`` is the model's probability of the
    shortcut's class (NaN without probabilities); the highest comes first."""
    if count < 0:
        raise ValueError(f"counterexamples must be >= 0, got {count}")
    columns = {"id": pd.Series([], dtype=object), "token": pd.Series([], dtype=object),
               "class": pd.Series([], dtype=object), "pull": pd.Series([], dtype=float)}
    if count == 0 or not len(shortcuts):
        return pd.DataFrame(columns)
    index = {c: i for i, c in enumerate(classes)}
    ids = sorted(texts)
    queues = []
    ordered = shortcuts.sort_values(["rank", "token"], kind="stable")
    for token, cls in zip(ordered["token"], ordered["class"], strict=True):
        holds = contains_token([texts[i] for i in ids], token)
        candidates = []
        for sample, has in zip(ids, holds, strict=True):
            if not has or sample in exclude:
                continue
            p = probs.get(sample)
            predicted = classes[int(np.argmax(p))] if p is not None else None
            if labels.get(sample) != cls or (predicted is not None and predicted != cls):
                pull = float(p[index[cls]]) if p is not None and cls in index else float("nan")
                candidates.append((sample, token, cls, pull))
        # the model's pull towards the shortcut's class, highest first; unknown last
        candidates.sort(key=lambda c: (-(c[3] if not np.isnan(c[3]) else -1.0), c[0]))
        queues.append(candidates)
    picked, seen = [], set()
    while len(picked) < count and any(queues):
        for queue in queues:
            while queue and queue[0][0] in seen:
                queue.pop(0)
            if queue and len(picked) < count:
                pick = queue.pop(0)
                picked.append(pick)
                seen.add(pick[0])
    return pd.DataFrame(picked, columns=list(columns)) if picked else pd.DataFrame(columns)


def plan_counterexamples(store: RunStore, manifest: pd.DataFrame, *, count: int,
                         project_id: int | None) -> pd.DataFrame:
    """The counterexamples to send now (columns id, source, position, rank), topping the
    acquisition project up to ``count`` of them, queued behind the tasks it holds."""
    from relabeler.plugin.consensus import model_probabilities

    sent = manifest[manifest["source"] == COUNTEREXAMPLE]
    room = count - len(sent)
    empty = pd.DataFrame({"id": pd.Series([], dtype=object), "source": COUNTEREXAMPLE,
                          "position": pd.Series([], dtype=np.int64),
                          "rank": pd.array([], dtype="Int64")})
    if room <= 0:
        return empty
    if not store.exists(artifacts.SHORTCUTS.path):
        log.warning("push: no counterexamples: %s is missing (run `relabeler score`)",
                    artifacts.SHORTCUTS.path)
        return empty
    shortcuts = store.read_table(artifacts.SHORTCUTS.path).to_pandas()
    train = store.read_table(artifacts.TRAIN.path, columns=["id", "text", "label"]).to_pandas()
    classes = [str(c) for c in store.read_json(artifacts.LABELS.path)]
    picks = counterexample_picks(
        shortcuts, dict(zip(train["id"], train["text"], strict=True)),
        dict(zip(train["id"], train["label"], strict=True)),
        model_probabilities(store, classes), classes, count=room,
        exclude=set(manifest["id"]))
    mine = manifest[manifest["project_id"] == project_id] if project_id is not None \
        else manifest.iloc[:0]
    start = int(mine["priority"].max()) if len(mine) else 0
    if len(picks):
        log.info("push: %d counterexamples to shortcuts %s", len(picks),
                 sorted(set(picks["token"])))
    return pd.DataFrame({"id": list(picks["id"]), "source": COUNTEREXAMPLE,
                         "position": np.arange(start + 1, start + 1 + len(picks),
                                               dtype=np.int64),
                         "rank": pd.array(range(len(sent) + 1, len(sent) + 1 + len(picks)),
                                          dtype="Int64")})
