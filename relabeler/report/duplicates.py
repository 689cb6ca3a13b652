"""The report's duplicates section: leakage, conflicting groups, redundancy.

Reads ``scores/duplicates.parquet`` (written by ``relabeler score``). An eval row in a group
with a training row is *leaked*: the model saw its text (or a light edit of it) in training,
so its accuracy there says little about new data. The section gives both models' eval
accuracy with and without the leaked rows, the gain on the rows that are not leaked (with its
paired interval), the groups whose labels conflict and the training texts repeated most.

The groups are found by text when the run is scored (before any relabeling); the labels they
are read with are those of the dataset version the report is about (its
``retrain/vN/dataset/``), so a conflict relabeling resolved is not counted, and the repeated
texts are counted in that version's training set, naming the rows it left out (``retrain
--dedupe``, drops).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.report.stats import change_text, paired_gain
from relabeler.store import RunStore

#: groups listed in each table of the section
TOP = 10
#: leaked eval ids listed in report.json
LEAKED_IDS = 50
SNIPPET = 200


def _texts(store: RunStore, ids: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for split in ("train", "eval", "pool"):
        path = artifacts.SPLIT(split=split)
        if ids and store.exists(path):
            frame = store.read_table(path, columns=["id", "text"]).to_pandas()
            frame = frame[frame["id"].isin(ids)]
            out.update(zip(frame["id"], frame["text"].astype(str), strict=True))
    return out


def _accuracy(correct: np.ndarray) -> float | None:
    return float(correct.mean()) if len(correct) else None


def duplicates_section(store: RunStore, before: pd.DataFrame, after: pd.DataFrame,
                       classes: list[str], trained: set[str] | None = None,
                       labels: pd.Series | None = None, labels_from: str | None = None,
                       version: int | None = None) -> dict:
    """The section as a dict; {} when the run has no ``scores/duplicates.parquet``.

    ``before``/``after``: the two models' eval predictions indexed by id, in the same order,
    with ``label`` and ``pred``. ``trained``: the ids the retrained model trained on (pool rows
    it acquired among them); an eval row grouped with one of those, or with a baseline
    training row, is leaked for one model or both. ``labels``: id -> label of the dataset
    version the report is about (its training and eval rows; a row it does not hold, such as
    a dropped or an unlabeled pool row, has none), which the conflicting groups are counted
    with, named by ``labels_from``; None: the labels the table was scored with (the baseline
    dataset's, version 0). ``version``: the number of the dataset version ``trained`` is;
    the repeated texts are counted in its training set (the baseline's without ``trained``),
    and the baseline training rows of a group it leaves out are named.
    """
    if not store.exists(artifacts.DUPLICATES.path):
        return {}
    dups = store.read_table(artifacts.DUPLICATES.path).to_pandas()
    if labels is not None:
        found = dups["id"].map(labels).astype(object)
        dups = dups.assign(label=found.where(found.notna(), None))
    else:
        labels_from = "the baseline dataset's (dataset/, version 0), as scored"
    in_training = (dups["split"] == "train") | dups["id"].isin(trained or set())
    with_train = set(dups.loc[in_training & (dups["split"] != "eval"), "group_id"])
    leaked_ids = dups.loc[(dups["split"] == "eval") & dups["group_id"].isin(with_train), "id"]
    leaked = before.index.isin(set(leaked_ids))
    accuracy = {}
    for name, frame in (("before", before), ("after", after)):
        correct = (frame["pred"].to_numpy() == before["label"].to_numpy())
        accuracy[name] = {"all": _accuracy(correct), "without_leaked": _accuracy(correct[~leaked]),
                          "leaked": _accuracy(correct[leaked])}
    gain = None
    if leaked.any() and (~leaked).any():
        kept = paired_gain(before, after, classes, rows=~leaked)["accuracy"]
        gain = {"delta": kept["delta"], "ci95": kept["ci95"]}

    labelled = dups.dropna(subset=["label"])
    n_labels = labelled.groupby("group_id")["label"].nunique()
    conflicting = n_labels.index[n_labels > 1]
    sizes = dups.groupby("group_id").size()
    top_conflicts = sizes.loc[conflicting].sort_values(ascending=False, kind="stable").index[:TOP]
    # the training rows of the version (its acquired pool rows among them), or the baseline's
    in_version = (dups["split"] == "train") if trained is None else dups["id"].isin(trained)
    left_out = (dups["split"] == "train") & ~in_version
    repeats = dups[in_version].groupby("group_id").size()
    top_repeats = repeats[repeats > 1].sort_values(ascending=False, kind="stable").index[:TOP]
    shown = dups[dups["group_id"].isin(set(top_conflicts) | set(top_repeats))]
    # a group is shown by its first training row by id (its first row when it has none)
    first_id = shown.assign(other=~in_version.loc[shown.index]).sort_values(
        ["other", "id"]).groupby("group_id")["id"].first()
    texts = _texts(store, set(first_id))

    def describe(group_id: int, rows: pd.DataFrame) -> dict:
        return {"group_id": int(group_id), "size": int(len(rows)),
                "splits": rows["split"].value_counts().to_dict(),
                "labels": rows["label"].dropna().value_counts().to_dict(),
                "text": texts.get(first_id[group_id], "")[:SNIPPET],
                "dropped": sorted(rows.loc[left_out.loc[rows.index], "id"].astype(str))}

    return {
        "groups": int(dups["group_id"].nunique()),
        "rows": int(len(dups)),
        "n_eval": int(len(before)),
        "leaked": {"n": int(leaked.sum()),
                   "ids": sorted(before.index[leaked].astype(str))[:LEAKED_IDS]},
        "accuracy": accuracy,
        "gain_without_leaked": gain,
        "labels_from": labels_from,
        "train_from": None if trained is None else version,
        "dropped": {"n": int(left_out.sum()),
                    "ids": sorted(dups.loc[left_out, "id"].astype(str))[:LEAKED_IDS]},
        "conflicting": {"n": int(len(conflicting)),
                        "top": [describe(g, dups[dups["group_id"] == g])
                                for g in top_conflicts]},
        "most_repeated": [{**describe(g, dups[dups["group_id"] == g]),
                           "train_copies": int(repeats[g])} for g in top_repeats],
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _counts(counts: dict) -> str:
    return ", ".join(f"{html.escape(str(k))}: {v}" for k, v in counts.items())


def render_duplicates(section: dict) -> str:
    """The section as HTML; '' when there is none."""
    if not section:
        return ""
    acc, leaked = section["accuracy"], section["leaked"]
    rows = "".join(
        f"<tr><td>{name}</td><td>{_pct(acc[name]['all'])}</td>"
        f"<td>{_pct(acc[name]['without_leaked'])}</td><td>{_pct(acc[name]['leaked'])}</td></tr>"
        for name in ("before", "after"))
    labels_from = section.get("labels_from")
    labels_html = (f"<p>Labels: {html.escape(labels_from)}; the groups were found by text when "
                   f"the run was scored.</p>" if labels_from else "")
    gain = section["gain_without_leaked"]
    gain_html = ("" if gain is None else
                 f"<p>Gain on the eval samples that are not leaked: "
                 f"{html.escape(change_text(gain['delta'], gain['ci95']))}.</p>")

    version = section.get("train_from")
    training = ("the baseline's training set (version 0)" if version is None else
                f"version {version}'s training set")

    def table(title: str, items: list[dict], first: str, key: str, note: str = "") -> str:
        if not items:
            return f"<h3>{title}</h3>{labels_html}<p>None.</p>{note}"
        body = "".join(
            f"<tr><td>{item[key]}</td><td>{_counts(item['labels'])}</td>"
            f"<td>{_counts(item['splits'])}</td><td style=\"text-align:left\">"
            f"{html.escape(item['text'])}</td></tr>" for item in items)
        return (f"<h3>{title}</h3>{labels_html}<table><tr><th>{first}</th><th>labels</th>"
                f"<th>splits (as scored)</th>"
                f"<th>text (first row by id of {html.escape(training)})</th></tr>{body}"
                f"</table>{note}")

    dropped = section.get("dropped") or {}
    dropped_html = ""
    if version is not None and dropped.get("n"):
        listed = ", ".join(html.escape(i) for i in dropped["ids"])
        more = f" (the first {len(dropped['ids'])})" if dropped["n"] > len(dropped["ids"]) else ""
        dropped_html = "<p>" + html.escape(
            f"Version {version}'s training set leaves out {dropped['n']} training rows of the "
            f"duplicate groups that the baseline's holds (dropped by an answer or by retrain "
            f"--dedupe){more}: ") + listed + ".</p>"

    return (
        f"<h2>Duplicates and leakage</h2><p>{section['groups']} groups of duplicate or "
        f"near-duplicate texts ({section['rows']} rows). <b>{leaked['n']}</b> of "
        f"{section['n_eval']} eval samples have a duplicate in the training set (leaked): "
        f"the model saw their text in training.</p>"
        f"<table><tr><th>model</th><th>eval accuracy</th><th>without leaked</th>"
        f"<th>on leaked only</th></tr>{rows}</table>{gain_html}"
        + table(f"Groups with conflicting labels ({section['conflicting']['n']})",
                section["conflicting"]["top"], "rows", "size")
        + table(f"Most repeated training texts ({html.escape(training)})",
                section["most_repeated"], f"copies in {html.escape(training)}", "train_copies",
                dropped_html))


__all__ = ["duplicates_section", "render_duplicates"]
