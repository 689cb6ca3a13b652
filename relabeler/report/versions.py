"""The report's "Versions" section: each complete dataset version's eval accuracy, against the
baseline and against the version before it, so that a round whose corrections lowered
accuracy shows, where the headline compares only the latest version with the baseline."""

from __future__ import annotations

import html
import re

import pandas as pd

from relabeler import artifacts
from relabeler.report.stats import change_text, paired_gain
from relabeler.store import RunStore

_COMPLETE = re.compile(r"retrain/v(\d+)/comparison\.json")


def version_rows(store: RunStore, before: pd.DataFrame, classes: list[str]) -> list[dict]:
    """One row per complete version (``retrain/vN/comparison.json`` there), oldest first: the
    answers it was built from, its eval accuracy, and the paired change (95% interval) from
    the baseline and from the previous version. ``before``: the baseline's eval predictions,
    id-indexed."""
    # a version is complete once its comparison.json is written (the last file of it)
    numbers = sorted(int(m.group(1)) for path in store.list("retrain")
                     if (m := _COMPLETE.fullmatch(path)))
    rows, previous = [], before
    for n in numbers:
        sub = RunStore(store.path(artifacts.RETRAIN(n=n)))
        counts = sub.read_json("comparison.json").get("corrections", {})
        preds = sub.read_table(artifacts.EVAL_PREDICTIONS.path).to_pandas().set_index("id")
        preds = preds.reindex(before.index)
        from_base = paired_gain(before, preds, classes)["accuracy"]
        from_previous = paired_gain(previous, preds, classes)["accuracy"]
        rows.append({"version": n, "reviewed": counts.get("reviewed"),
                     "changed": counts.get("changed"), "accuracy": from_base["after"],
                     "from_baseline": {"delta": from_base["delta"],
                                       "ci95": from_base["ci95"]},
                     "from_previous": {"delta": from_previous["delta"],
                                       "ci95": from_previous["ci95"]}})
        previous = preds
    return rows


def versions_html(rows: list[dict]) -> str:
    """The table, and a plain line for every version that lost accuracy to the one before."""
    if len(rows) < 2:  # one version: the headline says it all
        return ""
    body = "".join(
        f"<tr><td>v{r['version']}</td><td>{r['reviewed']}</td><td>{r['changed']}</td>"
        f"<td>{100 * r['accuracy']:.1f}%</td>"
        f"<td>{html.escape(change_text(**r['from_baseline']))}</td>"
        f"<td>{html.escape(change_text(**r['from_previous']))}</td></tr>" for r in rows)
    worse = [r for r in rows[1:] if r["from_previous"]["ci95"][1] < 0]
    lower = [r for r in rows[1:] if r["from_previous"]["delta"] < 0 and r not in worse]
    notes = "".join(
        f"<p><b>Version {r['version']} is less accurate than version {r['version'] - 1}</b> "
        f"({html.escape(change_text(**r['from_previous']))}): the answers it added made the "
        f"model worse on the eval rows; look at them (wrong answers, or eval labels the audit "
        f"has not reached) before the next round.</p>" for r in worse)
    if lower:
        notes += (f"<p>Version{'s' if len(lower) > 1 else ''} "
                  f"{', '.join(str(r['version']) for r in lower)} scored lower than the version "
                  f"before, within noise.</p>")
    return ("<h2>Versions</h2><p>Each dataset version the answers made, on the same eval "
            "rows: against the baseline and against the version before it.</p>"
            "<table><tr><th>version</th><th>answers</th><th>labels changed</th>"
            "<th>eval accuracy</th><th>change from the baseline</th>"
            "<th>change from the version before</th></tr>" + body + "</table>" + notes)
