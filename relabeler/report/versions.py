"""The report's "Versions" section: each complete dataset version's eval accuracy, against the
baseline and against the version before it, so that a round whose corrections lowered
accuracy shows, where the headline compares only the latest version with the baseline.

Each version is named with the training settings it was made with (``retrain --debias``,
``--class-weights``, ``--dedupe``: ``"mitigation"`` and ``"dedupe"`` of its
``comparison.json``), so that a change the settings made is not read as the answers'."""

from __future__ import annotations

import html
import re

import pandas as pd

from relabeler import artifacts
from relabeler.report.stats import change_text, paired_gain
from relabeler.store import RunStore

_COMPLETE = re.compile(r"retrain/v(\d+)/comparison\.json")

#: the settings of a retrain given no --debias, --class-weights or --dedupe
DEFAULT_SETTINGS = {"debias": "none", "class_weights": "none", "dedupe": False}


def training_settings(mitigation: dict | None, dedupe: bool) -> dict | None:
    """The settings a model was trained with: debias method (with its tokens and mask rate),
    class weights and dedupe; None where ``mitigation`` (``train/metrics.json``'s or
    ``comparison.json``'s) is not recorded."""
    if mitigation is None:
        return None
    settings = {"debias": mitigation.get("debias", "none"),
                "class_weights": mitigation.get("class_weights", "none"), "dedupe": dedupe}
    if settings["debias"] != "none":
        settings["tokens"] = list(mitigation.get("tokens") or [])
        if mitigation.get("mask_rate") is not None:
            settings["mask_rate"] = mitigation["mask_rate"]
    return settings


def settings_text(settings: dict | None) -> str:
    """``debias mask (tokens: computer; mask rate 1), balanced class weights, dedupe``, or
    ``defaults`` (no debias, no class weights, no dedupe)."""
    if settings is None:
        return "not recorded"
    parts = []
    if settings["debias"] != "none":
        detail = f"tokens: {', '.join(settings.get('tokens') or []) or 'none'}"
        if settings.get("mask_rate") is not None:
            detail += f"; mask rate {settings['mask_rate']:g}"
        parts.append(f"debias {settings['debias']} ({detail})")
    if settings["class_weights"] != "none":
        parts.append(f"{settings['class_weights']} class weights")
    if settings["dedupe"]:
        parts.append("dedupe")
    return ", ".join(parts) or "defaults"


def is_default(settings: dict | None) -> bool:
    """Whether ``settings`` are a retrain's defaults (unknown settings count as default)."""
    return settings is None or all(settings.get(k) == v for k, v in DEFAULT_SETTINGS.items())


def baseline_settings(store: RunStore) -> dict | None:
    """The baseline model's settings (``train/metrics.json``; never deduped)."""
    if not store.exists(artifacts.METRICS.path):
        return None
    return training_settings(store.read_json(artifacts.METRICS.path).get("mitigation"), False)


def version_settings(sub: RunStore) -> dict | None:
    """Dataset version ``sub``'s (``retrain/vN/``) settings, from its ``comparison.json``
    (None without one)."""
    comparison = sub.read_json("comparison.json") if sub.exists("comparison.json") else {}
    return training_settings(comparison.get("mitigation"), "dedupe" in comparison)


def _answers(sub: RunStore) -> str | None:
    """The fingerprint of the answers version ``sub`` was built from."""
    info = sub.stage_info("data")
    return None if info is None else info["info"].get("corrections")


def version_rows(store: RunStore, before: pd.DataFrame, classes: list[str]) -> list[dict]:
    """One row per complete version (``retrain/vN/comparison.json`` there), oldest first: the
    answers it was built from, its training settings, its eval accuracy, and the paired change
    (95% interval) from the baseline and from the previous version, with whether the settings
    (``settings_changed``) and the answers (``same_answers``) differ from that version's
    (None where unknown). ``before``: the baseline's eval predictions, id-indexed."""
    # a version is complete once its comparison.json is written (the last file of it)
    numbers = sorted(int(m.group(1)) for path in store.list("retrain")
                     if (m := _COMPLETE.fullmatch(path)))
    rows, previous = [], before
    previous_settings, previous_answers = baseline_settings(store), None
    for n in numbers:
        sub = RunStore(store.path(artifacts.RETRAIN(n=n)))
        counts = sub.read_json("comparison.json").get("corrections", {})
        settings, answers = version_settings(sub), _answers(sub)
        preds = sub.read_table(artifacts.EVAL_PREDICTIONS.path).to_pandas().set_index("id")
        preds = preds.reindex(before.index)
        from_base = paired_gain(before, preds, classes)["accuracy"]
        from_previous = paired_gain(previous, preds, classes)["accuracy"]
        changed = (None if settings is None or previous_settings is None
                   else settings != previous_settings)
        rows.append({"version": n, "reviewed": counts.get("reviewed"),
                     "changed": counts.get("changed"), "settings": settings,
                     "accuracy": from_base["after"],
                     "from_baseline": {"delta": from_base["delta"],
                                       "ci95": from_base["ci95"]},
                     "from_previous": {"delta": from_previous["delta"],
                                       "ci95": from_previous["ci95"],
                                       "settings_changed": changed,
                                       "same_answers": (None if not answers or not rows
                                                        or not previous_answers
                                                        else answers == previous_answers)}})
        previous, previous_settings, previous_answers = preds, settings, answers
    return rows


def _why(row: dict, before: dict) -> str:
    """What a drop from version ``before`` to ``row`` can be put down to."""
    step = row["from_previous"]
    if not step.get("settings_changed"):
        return ("the answers it added made the model worse on the eval rows; look at them "
                "(wrong answers, or eval labels the audit has not reached) before the next "
                "round.")
    settings = (f"its training settings ({settings_text(row['settings'])}) differ from version "
                f"{before['version']}'s ({settings_text(before['settings'])})")
    if step.get("same_answers"):
        return f"it was built from the same answers, and {settings}: the change is the settings'."
    return (f"{settings}, so the change is not the answers' alone; retrain with version "
            f"{before['version']}'s settings to tell them apart.")


def versions_html(rows: list[dict]) -> str:
    """The table, and a plain line for every version that lost accuracy to the one before,
    saying where its training settings differ from that version's."""
    if len(rows) < 2:  # one version: the headline says it all
        return ""

    def step(r: dict) -> str:
        text = change_text(r["from_previous"]["delta"], r["from_previous"]["ci95"])
        if r["from_previous"].get("settings_changed"):
            text += "; training settings changed"
        return html.escape(text)

    body = "".join(
        f"<tr><td>v{r['version']}</td><td>{r['reviewed']}</td><td>{r['changed']}</td>"
        f"<td>{html.escape(settings_text(r.get('settings')))}</td>"
        f"<td>{100 * r['accuracy']:.1f}%</td>"
        f"<td>{html.escape(change_text(**r['from_baseline']))}</td>"
        f"<td>{step(r)}</td></tr>" for r in rows)
    pairs = list(zip(rows, rows[1:], strict=False))
    worse = [(b, r) for b, r in pairs if r["from_previous"]["ci95"][1] < 0]
    lower = [(b, r) for b, r in pairs if r["from_previous"]["delta"] < 0
             and r["from_previous"]["ci95"][1] >= 0]
    notes = "".join(
        f"<p><b>Version {r['version']} is less accurate than version {b['version']}</b> "
        f"({html.escape(change_text(r['from_previous']['delta'], r['from_previous']['ci95']))}"
        f"): {html.escape(_why(r, b))}</p>" for b, r in worse)
    same = [r for _, r in lower if not r["from_previous"].get("settings_changed")]
    if same:
        notes += (f"<p>Version{'s' if len(same) > 1 else ''} "
                  f"{', '.join(str(r['version']) for r in same)} scored lower than the version "
                  f"before, within noise.</p>")
    notes += "".join(
        f"<p>Version {r['version']} scored lower than version {b['version']}, within noise; "
        f"{html.escape(_why(r, b))}</p>" for b, r in lower
        if r["from_previous"].get("settings_changed"))
    return ("<h2>Versions</h2><p>Each dataset version the answers made, on the same eval "
            "rows: against the baseline and against the version before it, with the training "
            "settings it was made with (retrain --debias, --class-weights, --dedupe).</p>"
            "<table><tr><th>version</th><th>answers</th><th>labels changed</th>"
            "<th>training settings</th>"
            "<th>eval accuracy</th><th>change from the baseline</th>"
            "<th>change from the version before</th></tr>" + body + "</table>" + notes)
