"""``relabeler report``: what the relabeling bought, with 95% intervals.

Reads the latest retrain (``retrain/vN/``), the corrections, the push manifest, the duplicate
groups (:mod:`relabeler.report.duplicates`) and, when the truth is known (simulations, demos),
the injected noise. Writes ``report/report.json``, a self-contained ``report/report.html``
(plots embedded) and the plots as ``report/*.png``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.config import RunConfig
from relabeler.corrections import corrections_fingerprint, split_eval_answers
from relabeler.errors import DataError, StageError
from relabeler.report.annotators import annotators_section, render_annotators
from relabeler.report.duplicates import duplicates_section, render_duplicates
from relabeler.report.remaining import (
    ANSWERED,
    advice_text,
    estimate_remaining,
    stored_chances,
    true_remaining,
)
from relabeler.report.rounds import (
    NO_BETTER,
    REVIEW,
    burn_down,
    burn_down_text,
    labels_given,
    remaining_plot,
    review_answers,
)
from relabeler.report.shortcuts import PLOTS as SHORTCUT_PLOTS
from relabeler.report.shortcuts import shortcut_html, shortcut_plots, shortcut_section
from relabeler.report.stats import paired_gain, rate_interval
from relabeler.report.thin_regions import (
    steered_gain,
    steered_gain_html,
    thin_region_html,
    thin_region_section,
)
from relabeler.store import RunStore

log = logging.getLogger(__name__)


def _queue_precision(corrections: pd.DataFrame, manifest: pd.DataFrame | None) -> dict:
    """Correction rate among flagged tasks vs among the random-control slice (lift)."""
    if manifest is None or "source" not in manifest.columns:
        return {}
    merged = corrections.merge(manifest[["id", "source"]].rename(
        columns={"source": "queue_source"}), on="id", how="inner")
    out = {}
    for source in ("flagged", "random_control"):
        part = merged[(merged["queue_source"] == source) & merged["action"].isin(
            ("keep", "relabel", "drop"))]
        changed = int(((part["action"] == "relabel") & (part["new_label"] != part["old_label"])
                       | (part["action"] == "drop")).sum())
        out[source] = {"reviewed": int(len(part)), "corrected": changed,
                       "rate": changed / len(part) if len(part) else None,
                       "ci95": rate_interval(changed, len(part))}
    flagged, control = out["flagged"]["rate"], out["random_control"]["rate"]
    out["lift"] = flagged / control if flagged is not None and control else None
    # a lower bound that exists even when no control needed a change: the flagged rate's lower
    # 95% limit over the control rate's upper one
    low, high = out["flagged"]["ci95"][0], out["random_control"]["ci95"][1]
    out["lift_lower"] = low / high if flagged and out["random_control"][
        "reviewed"] and high else None
    return out


def _lift_text(queue: dict) -> str:
    flagged, control = queue["flagged"], queue["random_control"]
    lift, lower = queue.get("lift"), queue.get("lift_lower")
    unread = [name for name, part in (("flagged task", flagged), ("random control", control))
              if not part["reviewed"]]
    if unread:
        return f"n/a (no {' and no '.join(unread)} was reviewed yet)"
    bound = ("the flagged rate's lower 95% limit over the control rate's upper one"
             if lower is not None else "")
    if lift is not None:
        return f"{lift:.1f}x" + (f" (at least {lower:.1f}x: {bound})" if bound else "")
    if not flagged["corrected"]:
        return "n/a (neither the flagged tasks nor the random controls needed a change)"
    # no control needed a change: the ratio has no finite estimate, only its lower bound
    text = "not measurable: no random control needed a change"
    if lower is None:
        return text
    if lower >= 1:
        return f"{text}; at least {lower:.1f}x ({bound})"
    return (f"{text}; not shown to beat random picks ({bound} is {lower:.1f}x, below 1: the "
            f"controls are too few to tell)")


def _detection_curve(store: RunStore, train: pd.DataFrame) -> dict:
    """Precision and recall of the suspect queue against the injected noise, by budget."""
    if "flipped" not in train.columns or not store.exists(artifacts.SUSPECTS.path):
        return {}
    suspects = store.read_table(artifacts.SUSPECTS.path, columns=["id", "rank"]).to_pandas()
    flipped = train.set_index("id")["flipped"].reindex(
        suspects.sort_values("rank")["id"]).to_numpy(dtype=bool)
    n_flipped = int(flipped.sum())
    if n_flipped == 0:
        return {}
    budgets = sorted({int(b) for b in np.unique(np.linspace(1, len(flipped), 60).astype(int))})
    # one cumulative count serves every budget (scikit-learn would score each budget apart)
    hits = np.cumsum(flipped)
    return {"n_flipped": n_flipped, "budget": budgets,
            "precision": [float(hits[b - 1] / b) for b in budgets],
            "recall": [float(hits[b - 1] / n_flipped) for b in budgets]}


def build_report(store: RunStore, *, next_batch: int = 200, stop_rate: float = 0.05) -> dict:
    """The report as a dict (see :func:`write_report`); ``next_batch`` and ``stop_rate`` are
    ``[loop]``'s (:mod:`relabeler.report.remaining`)."""
    info = store.stage_info("retrain")
    if info is None:
        raise StageError(f"report needs a retrained model: run `relabeler retrain --run "
                         f"{store.uri}` after pulling corrections")
    version = info["info"]["version"]
    outdated = store.stale("retrain")
    if outdated is not None:  # version N beside a baseline made from other data: no gain
        raise StageError(f"report: retrain version {version} was made before the baseline it "
                         f"is compared with ({outdated}); run `relabeler retrain --run "
                         f"{store.uri}` first")
    sub = RunStore(store.path(artifacts.RETRAIN(n=version)))
    classes = store.read_json(artifacts.LABELS.path)
    before = store.read_table(artifacts.EVAL_PREDICTIONS.path).to_pandas().set_index("id")
    after = sub.read_table(artifacts.EVAL_PREDICTIONS.path).to_pandas().set_index("id")
    after = after.reindex(before.index)
    evaluation = paired_gain(before, after, classes)

    table = store.read_table(artifacts.CORRECTIONS.path)
    stale = None
    if info["info"].get("corrections") not in (None, corrections_fingerprint(table)):
        stale = (f"The answers changed after the last retrain (version {version}): the eval gain "
                 f"is that version's, while the answers, labels spent and what is left are the "
                 f"latest. Run `relabeler retrain --run {store.uri}`, then report again.")
        log.warning("report: %s", stale)
    counts = info["info"]
    train = store.read_table(artifacts.TRAIN.path).to_pandas()
    corrections, audit_answers = _answers(store, table, train)
    reviewed = corrections[corrections["action"].isin(("keep", "relabel"))]
    matrix = pd.crosstab(reviewed["old_label"].fillna("(pool)"), reviewed["new_label"])
    manifest = (store.read_table(artifacts.MANIFEST.path).to_pandas()
                if store.exists(artifacts.MANIFEST.path) else None)
    chances = round_chances(store, manifest, train["id"]) if manifest is not None else {}
    model_wrong = _model_wrong(store, len(train))
    remaining = _remaining(train, corrections, manifest, next_batch, stop_rate, chances,
                           model_wrong)
    spent = _labels_spent(corrections, audit_answers, set(train["id"]), manifest)
    labels_spent = spent["total"]
    delta = evaluation["accuracy"]["delta"]
    report = {
        "run": store.uri,
        "version": version,
        "stale": stale,
        "classes": classes,
        "eval": evaluation,
        "eval_unsteered": steered_gain(store, sub, before, after, classes),
        "corrections": {k: counts.get(k) for k in ("reviewed", "changed", "dropped", "unsure",
                                                   "acquired", "deduped", "dedupe_unresolved",
                                                   "n_train_before", "n_train_after")},
        "correction_matrix": {str(old): {str(new): int(v) for new, v in row.items() if v}
                              for old, row in matrix.iterrows()},
        "queue": _queue_precision(corrections, manifest),
        "labels_spent": labels_spent,
        "labels_spent_parts": {k: v for k, v in spent.items() if k != "total"},
        "gain_per_100_labels": 100 * delta / labels_spent * 100 if labels_spent else None,
        "detection": _detection_curve(store, train),
        "remaining": remaining,
        "rounds": _rounds(store, train, corrections, manifest, next_batch, stop_rate, chances,
                          model_wrong, remaining),
        "eval_audit": {**_eval_audit(store, audit_answers),
                       **_audited_gain(sub, before, after, classes, evaluation)},
        "shortcuts": shortcut_section(store),
        "thin_regions": thin_region_section(store),
        "duplicates": duplicates_section(store, before, after, classes, trained=(
            set(sub.read_table(artifacts.TRAIN.path, columns=["id"]).column("id").to_pylist())
            if sub.exists(artifacts.TRAIN.path) else None)),
        "annotators": annotators_section(store, corrections),
    }
    return report


def _answers(store: RunStore, table, train: pd.DataFrame
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training and pool answers, eval-audit answers) of ``labels/corrections.parquet``
    (``table``), split as retrain splits them (:func:`split_eval_answers`: by ``source`` or by
    an eval id). A training answer's ``old_label`` is its row's label in the baseline training
    split and a pool answer's None, whatever the file says (retrain reads the label from there
    too; a file made outside Label Studio may leave the column out or blank).

    Raises DataError naming the file and the id of an answer to a row of no split."""
    eval_ids = set(store.read_table(artifacts.EVAL.path, columns=["id"]).column("id")
                   .to_pylist())
    training, audit = split_eval_answers(table.to_pandas(), eval_ids)
    labels = train.set_index("id")["label"]
    pool_ids = set(store.read_table(artifacts.POOL.path, columns=["id"]).column("id")
                   .to_pylist()) if store.exists(artifacts.POOL.path) else set()
    unknown = training[~training["id"].isin(labels.index) & ~training["id"].isin(pool_ids)]
    if len(unknown):
        raise DataError(f"{artifacts.CORRECTIONS.path}, row {unknown.index[0]}: id "
                        f"{unknown['id'].iloc[0]!r} is in neither the training set, the eval "
                        f"split nor the pool of this run")
    old = training["id"].map(labels).astype(object)
    training = training.assign(old_label=old.where(old.notna(), None))
    return training.reset_index(drop=True), audit.reset_index(drop=True)


def _labels_spent(corrections: pd.DataFrame, audit: pd.DataFrame, train_ids: set,
                  manifest: pd.DataFrame | None) -> dict:
    """The labels spent (:func:`labels_given`: one per person's answer to a task) on the
    training and pool answers (``total``), and its parts: ``review`` on the flagged and
    random-control tasks (the burn-down's; without a manifest, every answer to a training
    row), ``acquisition`` on pool rows, ``other`` on training rows sent for another reason
    (counterexamples); ``eval_audit``: the eval audit's, not in the total."""
    spent = labels_given(corrections)
    on_train = corrections["id"].isin(train_ids)
    review = on_train
    if manifest is not None:
        review = on_train & corrections["id"].isin(
            set(manifest.loc[manifest["source"].isin(REVIEW), "id"]))
    return {"total": int(spent.sum()), "review": int(spent[review].sum()),
            "acquisition": int(spent[~on_train].sum()),
            "other": int(spent[on_train & ~review].sum()),
            "eval_audit": int(labels_given(audit).sum())}


def _eval_audit(store: RunStore, answers: pd.DataFrame, top: int = 10) -> dict:
    """The eval rows whose labels most deserve a second look before the gain is trusted: the
    highest-ranked ones the eval audit has not answered (keep, relabel or drop; ``answers``:
    the audit's), and how many of the ranked rows it has."""
    if not store.exists(artifacts.EVAL_SUSPECTS.path):
        return {}
    ranked = store.read_table(artifacts.EVAL_SUSPECTS.path).to_pandas().sort_values(
        "rank", kind="stable")
    done = ranked["id"].isin(set(answers.loc[answers["action"].isin(ANSWERED), "id"]))
    disputed = ranked["suspect_score"] >= 0.9
    return {"ranked": int(len(ranked)), "high_suspicion": int(disputed.sum()),
            "audited": int(done.sum()), "high_suspicion_unaudited": int((disputed & ~done).sum()),
            "top": ranked[~done].head(top)[["id", "given_label", "suggested_label",
                                            "suspect_score"]].to_dict("records")}


def round_chances(store: RunStore, manifest: pd.DataFrame, train_ids: pd.Series
                  ) -> dict[int, pd.Series]:
    """Round -> the chance that each training row's label is wrong (the suspects'
    ``wrong_probability``, id-indexed, the rows of ``train_ids`` only: a version's acquired
    rows were labeled by people) under the scoring that picked the round: the run's own for
    round 1, the version ``studio/rounds.json`` records for a later one. Rounds scored before
    the column existed are left out."""
    records = (store.read_json(artifacts.ROUNDS.path)["rounds"]
               if store.exists(artifacts.ROUNDS.path) else [])
    version = {int(r["round"]): int(r.get("version", 0)) for r in records}
    rounds = ({int(r) for r in manifest["round"].dropna()} if "round" in manifest.columns
              else {1})
    train = set(train_ids)
    chances: dict[int, pd.Series] = {}
    for r in sorted(rounds):
        v = version.get(r, 0)
        scored = store if v == 0 else RunStore(store.path(artifacts.RETRAIN(n=v)))
        found = stored_chances(scored) if scored.exists(artifacts.SUSPECTS.path) else None
        if found is not None:
            chances[r] = found[found.index.isin(train)]
    return chances


def _model_wrong(store: RunStore, n_train: int) -> float | None:
    """The wrong labels the score's noise model estimates among the training rows, if known."""
    summary = (store.read_json(artifacts.SUMMARY.path) if store.exists(artifacts.SUMMARY.path)
               else {})
    share = (summary.get("noise") or {}).get("estimated_wrong_share")
    return None if share is None else share * n_train


def _remaining(train: pd.DataFrame, corrections: pd.DataFrame, manifest: pd.DataFrame | None,
               next_batch: int, stop_rate: float, chances: dict[int, pd.Series],
               model_wrong: float | None) -> dict:
    """What is left (:func:`estimate_remaining`), and the truth where a simulation knows it;
    ``chances``: :func:`round_chances`; ``model_wrong``: :func:`_model_wrong`."""
    if manifest is None:
        return {"available": False, "why": "needs the push manifest",
                "text": "Not available: nothing was pushed to Label Studio (no "
                        "studio/manifest.parquet), so there are no random controls to read "
                        "the wrong labels left from."}
    # the review tasks and their answers alone, as the burn-down reads each round
    manifest, corrections = review_answers(manifest, corrections)
    left = estimate_remaining(manifest, corrections, len(train), next_batch=next_batch,
                              stop_rate=stop_rate, model_wrong=model_wrong,
                              wrong_probability=chances)
    left["true_remaining"] = true_remaining(train, corrections)
    left["text"] = advice_text(left)
    return left


def _rounds(store: RunStore, train: pd.DataFrame, corrections: pd.DataFrame,
            manifest: pd.DataFrame | None, next_batch: int, stop_rate: float,
            chances: dict[int, pd.Series], model_wrong: float | None, left: dict) -> dict:
    """The burn-down across rounds (:func:`relabeler.report.rounds.burn_down`), each round's
    record from ``studio/rounds.json`` (ranked or random picks, and the test that decided),
    and the advice now (``left``: :func:`_remaining`'s, worked out once for both sections)."""
    if manifest is None:
        return {}
    rows = burn_down(manifest, corrections, train, next_batch=next_batch, stop_rate=stop_rate,
                     model_wrong=model_wrong, wrong_probability=chances)
    records = (store.read_json(artifacts.ROUNDS.path)["rounds"]
               if store.exists(artifacts.ROUNDS.path) else [])
    by_round = {int(r["round"]): r for r in records}
    for row in rows:
        record = by_round.get(row["round"], {})
        row["mode"] = record.get("mode", "ranked")
        row["version"] = record.get("version", 0)
        row["queue_test"] = record.get("queue_test")
    return {"rows": rows, "text": burn_down_text(rows, left)}


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def plots(report: dict) -> dict[str, bytes]:
    """PNG plots: accuracy vs labels spent, the correction matrix, detection vs budget,
    shortcut tokens and class balance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    acc = report["eval"]["accuracy"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    spent = report["labels_spent"]
    low, high = acc["ci95"]
    ax.errorbar([spent], [acc["after"]], yerr=[[acc["delta"] - low], [high - acc["delta"]]],
                fmt="o", color="tab:green", capsize=4, label="after (95% CI of the gain)")
    ax.plot([0, spent], [acc["before"], acc["after"]], "--", color="grey")
    ax.plot([0], [acc["before"]], "o", color="tab:blue", label="before")
    ax.set_xlabel("labels spent")
    ax.set_ylabel("eval accuracy")
    ax.set_title("Accuracy vs labels spent")
    ax.legend(loc="lower right")
    out["accuracy.png"] = _png(fig)
    plt.close(fig)

    matrix = report["correction_matrix"]
    if matrix:
        rows = sorted(matrix)
        cols = sorted({c for r in matrix.values() for c in r})
        values = np.array([[matrix[r].get(c, 0) for c in cols] for r in rows])
        fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(cols), 1.0 + 0.6 * len(rows)))
        ax.imshow(values, cmap="Blues")
        # class names are drawn as they are: parse_math=False, or "$" starts mathtext
        ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", parse_math=False)
        ax.set_yticks(range(len(rows)), rows, parse_math=False)
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, str(v), ha="center", va="center",
                    color="white" if v > values.max() / 2 else "black")
        ax.set_xlabel("label after review")
        ax.set_ylabel("label before")
        ax.set_title("Corrections")
        out["corrections.png"] = _png(fig)
        plt.close(fig)

    det = report.get("detection") or {}
    if det:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(det["budget"], det["precision"], label="precision")
        ax.plot(det["budget"], det["recall"], label="recall")
        ax.axvline(det["n_flipped"], color="grey", ls=":", label="number of wrong labels")
        ax.set_xlabel("samples reviewed, highest suspect first")
        ax.set_title("Detection against the known wrong labels")
        ax.legend()
        out["detection.png"] = _png(fig)
        plt.close(fig)
    out.update(shortcut_plots(report.get("shortcuts") or {}, _png))
    out.update(remaining_plot((report.get("rounds") or {}).get("rows") or [], _png))
    return out


def _audited_gain(sub: RunStore, before: pd.DataFrame, after: pd.DataFrame,
                  classes: list[str], evaluation: dict) -> dict:
    """The accuracy delta on the original eval labels beside the one on the audited labels
    (``retrain/vN/dataset/eval_audited.parquet``), and their difference: the part of the
    measured gain that rests on eval labels the audit changed. Empty without an audit."""
    if not sub.exists(artifacts.EVAL_AUDITED_FILE):
        return {}
    audited = sub.read_table(artifacts.EVAL_AUDITED_FILE).to_pandas()
    kept = before.index.isin(set(audited["id"]))
    on_audited = paired_gain(before, after, classes, rows=kept,
                             labels=audited.set_index("id")["label"])
    sources = audited["label_source"].value_counts()
    original, fixed = evaluation["accuracy"], on_audited["accuracy"]
    return {"gain": {
        "original": {k: original[k] for k in ("before", "after", "delta", "ci95")},
        "audited": {k: fixed[k] for k in ("before", "after", "delta", "ci95")},
        "from_eval_errors": original["delta"] - fixed["delta"],
        "n_eval": int(len(before)), "n_audited_eval": int(kept.sum()),
        "reviewed": int(sources.get("reviewed", 0) + sources.get("corrected", 0)),
        "changed": int(sources.get("corrected", 0)),
        "dropped": int(len(before) - kept.sum())}}


def _fmt(value, pct: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if pct else f"{value:.2f}"


def _rate_ci(part: dict) -> str:
    """A queue rate's interval; n/a where nothing was reviewed (not a measured 0%)."""
    if not part["reviewed"]:
        return "n/a (none reviewed)"
    return f"[{_fmt(part['ci95'][0])}, {_fmt(part['ci95'][1])}]"


def render_html(report: dict, images: dict[str, bytes]) -> str:
    ev = report["eval"]

    def delta_row(name: str, leaf: dict) -> str:
        low, high = leaf["ci95"]
        return (f"<tr><td>{html.escape(name)}</td><td>{_fmt(leaf['before'])}</td>"
                f"<td>{_fmt(leaf['after'])}</td><td><b>{100 * leaf['delta']:+.1f}</b></td>"
                f"<td>[{100 * low:+.1f}, {100 * high:+.1f}]</td></tr>")

    rows = [delta_row("accuracy", ev["accuracy"]), delta_row("macro-F1", ev["macro_f1"])]
    for cls, leaves in ev["per_class"].items():
        rows.append(delta_row(f"{cls}: F1", leaves["f1"]))
    c = report["corrections"]
    queue = report.get("queue") or {}
    queue_html = ""
    if queue:
        f, r = queue["flagged"], queue["random_control"]
        queue_html = (
            "<h2>The queue</h2><table><tr><th></th><th>reviewed</th><th>corrected</th>"
            "<th>rate</th><th>95% CI</th></tr>"
            f"<tr><td>flagged by relabeler</td><td>{f['reviewed']}</td><td>{f['corrected']}"
            f"</td><td>{_fmt(f['rate'])}</td><td>{_rate_ci(f)}</td></tr>"
            f"<tr><td>random control</td><td>{r['reviewed']}</td><td>{r['corrected']}</td>"
            f"<td>{_fmt(r['rate'])}</td><td>{_rate_ci(r)}</td></tr></table>"
            f"<p>Lift (flagged rate / control rate): <b>{_lift_text(queue)}</b></p>")
    imgs = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode()}"></figure>' for name, data in images.items()
        if name not in SHORTCUT_PLOTS and name != "burndown.png")
    gain = report["gain_per_100_labels"]
    deduped = (f"; {c['deduped']} duplicate rows dropped (retrain --dedupe)"
               if c.get("deduped") else "")
    if c.get("dedupe_unresolved"):
        deduped += (f"; {c['dedupe_unresolved']} duplicate groups kept whole: their labels "
                    f"tie")
    spent = _spent_html(report.get("labels_spent_parts"),
                        bool((report.get("rounds") or {}).get("rows")))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>relabeler report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;
text-align:right}}td:first-child{{text-align:left}}figure{{display:inline-block;margin:.5em}}
.big{{font-size:1.4em}}</style></head><body>
<h1>What the relabeling bought</h1>
{_stale_html(report.get("stale"))}
<p>Run <code>{html.escape(report['run'])}</code>, dataset version {report['version']},
{ev['n_eval']} eval samples, paired bootstrap ({ev['n_boot']} draws).</p>
<p class="big">Eval accuracy {_fmt(ev['accuracy']['before'])} &rarr;
{_fmt(ev['accuracy']['after'])} ({100 * ev['accuracy']['delta']:+.1f} points,
95% CI [{100 * ev['accuracy']['ci95'][0]:+.1f}, {100 * ev['accuracy']['ci95'][1]:+.1f}]),
for {report['labels_spent']} labels
({'n/a' if gain is None else f'{gain:+.2f}'} points per 100 labels).</p>
{spent}
<table><tr><th>metric</th><th>before</th><th>after</th><th>delta (points)</th>
<th>95% CI</th></tr>{''.join(rows)}</table>
{steered_gain_html(report.get("eval_unsteered") or {})}
<h2>Corrections</h2>
<p>{c['reviewed']} training samples reviewed: {c['changed']} relabeled, {c['dropped']} dropped,
{c['unsure']} marked not sure; {c['acquired']} pool samples acquired{deduped}. Training set
{c['n_train_before']} &rarr; {c['n_train_after']} samples.</p>
{_matrix_html(report.get("correction_matrix") or {})}
{queue_html}
{_remaining_html(report.get("remaining") or {})}
{render_annotators(report.get("annotators") or {})}
{_rounds_html(report.get("rounds") or {}, images)}
{_eval_audit_html(report.get("eval_audit") or {})}
{shortcut_html(report.get("shortcuts") or {}, images)}
{thin_region_html(report.get("thin_regions") or {})}
{render_duplicates(report.get("duplicates") or {})}
<h2>Plots</h2>{imgs}
</body></html>
"""


def _spent_html(parts: dict | None, burn_down: bool) -> str:
    """What the headline's labels are: one label is one person's answer to one task
    (``burn_down``: the report has one, which counts the review tasks' part)."""
    if not parts:
        return ""
    named = [f"{parts['review']} on review tasks (flagged and random controls)"]
    if parts["acquisition"]:
        named.append(f"{parts['acquisition']} on pool samples acquired")
    if parts["other"]:
        named.append(f"{parts['other']} on other training tasks (counterexamples)")
    audit = (f"; the {parts['eval_audit']} labels of the eval audit are not counted"
             if parts["eval_audit"] else "")
    return (f"<p>Labels spent: one per person's answer to a task (one where the number of "
            f"answers is unknown), on the training and pool samples: {', '.join(named)}"
            f"{audit}."
            + (" The burn-down below counts the review tasks' part." if burn_down else "")
            + "</p>")


def _matrix_html(matrix: dict) -> str:
    """The correction matrix (label before -> label after review) as a table: the plot's
    numbers, readable whatever script the labels are in."""
    if not matrix:
        return ""
    esc = html.escape
    cols = sorted({c for row in matrix.values() for c in row})
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = "".join(
        f"<tr><td>{esc(old)}</td>"
        + "".join(f"<td>{matrix[old].get(c, 0)}</td>" for c in cols) + "</tr>"
        for old in sorted(matrix))
    return ("<p>Answers that kept or relabeled a sample, by the label before review (rows; "
            "(pool): acquired pool samples) and the label after (columns):</p>"
            f"<table><tr><th>before \\ after</th>{head}</tr>{body}</table>")


def _audited_gain_html(gain: dict) -> str:
    if not gain:
        return ""

    def cells(leaf: dict) -> str:
        low, high = leaf["ci95"]
        return (f"<td>{_fmt(leaf['before'])}</td><td>{_fmt(leaf['after'])}</td>"
                f"<td><b>{100 * leaf['delta']:+.1f}</b></td>"
                f"<td>[{100 * low:+.1f}, {100 * high:+.1f}]</td>")

    return (f"<p>{gain['reviewed']} eval labels audited: {gain['changed']} changed, "
            f"{gain['dropped']} eval rows dropped. The gain on the original eval labels beside "
            f"the gain on the audited ones; <b>{100 * gain['from_eval_errors']:+.1f} points</b> "
            "of the measured gain depend on eval labels the audit changed.</p>"
            "<table><tr><th>eval labels</th><th>rows</th><th>before</th><th>after</th>"
            "<th>delta (points)</th><th>95% CI</th></tr>"
            f"<tr><td>original</td><td>{gain['n_eval']}</td>{cells(gain['original'])}</tr>"
            f"<tr><td>audited</td><td>{gain['n_audited_eval']}</td>{cells(gain['audited'])}"
            "</tr></table>")


def _eval_audit_html(audit: dict) -> str:
    if not audit.get("ranked"):
        return ("<h2>Eval audit</h2>" + _audited_gain_html(audit["gain"])
                if audit.get("gain") else "")
    rows = "".join(
        f"<tr><td>{html.escape(str(r['id']))}</td><td>{html.escape(str(r['given_label']))}</td>"
        f"<td>{html.escape(str(r['suggested_label']))}</td><td>{r['suspect_score']:.2f}</td>"
        "</tr>" for r in audit["top"])
    audited = audit.get("audited", 0)
    done = (f" The audit has answered {audited} of the ranked rows, left out of the list below."
            if audited else "")
    unaudited = (f" ({audit['high_suspicion_unaudited']} of those not audited yet)"
                 if audited and audit["high_suspicion"] else "")
    listed = ("Wrong eval labels move the measured gain; review the top of this list before "
              "trusting it.</p><table><tr><th>eval row</th><th>label</th><th>suggested</th>"
              f"<th>score</th></tr>{rows}</table>" if rows else
              "Every ranked eval row has been answered by the audit.</p>")
    return ("<h2>Eval audit</h2><p>The eval labels are checked as the training labels are: "
            f"{audit['ranked']} eval rows ranked (scores/eval_suspects.parquet), "
            f"{audit['high_suspicion']} with a suspect score of 0.9 or more{unaudited}.{done} "
            f"{listed}" + _audited_gain_html(audit.get("gain") or {}))


def _remaining_html(left: dict) -> str:
    if not left:
        return ""
    text = left.get("text") or f"Not available: {left.get('why', 'no estimate')}."
    out = f"<h2>What is left</h2><p>{html.escape(text)}</p>"
    if left.get("available"):
        low, mid, high = left["remaining"]
        nxt = left["next_batch"]["corrections"]
        truth = left.get("true_remaining")
        out += ("<table><tr><th></th><th>estimate</th><th>95% interval</th></tr>"
                f"<tr><td>wrong labels left in unreviewed rows</td><td>{mid:.0f}</td>"
                f"<td>[{low:.0f}, {high:.0f}]</td></tr>"
                f"<tr><td>corrections from the next {left['next_batch']['size']} tasks</td>"
                f"<td>{nxt[1]:.0f}</td><td>[{nxt[0]:.0f}, {nxt[2]:.0f}]</td></tr></table>"
                f"<p>Advice: <b>{left['advice']}</b>"
                + (f" (simulation: {truth} wrong labels really remain)" if truth is not None
                   else "") + "</p>")
    return out


def _rounds_html(rounds: dict, images: dict[str, bytes]) -> str:
    rows = rounds.get("rows") or []
    if not rows:
        return ""

    def interval(row: dict) -> str:
        if row["remaining"] is None:
            return "<td>n/a</td><td>n/a</td>"
        low, mid, high = row["remaining"]
        return f"<td>{mid:.0f}</td><td>[{low:.0f}, {high:.0f}]</td>"

    truth = any(r["true_remaining"] is not None for r in rows)
    body = "".join(
        f"<tr><td>round {r['round']}</td><td>{html.escape(r['mode'])}</td><td>{r['tasks']}</td>"
        f"<td>{r['answered']}</td><td>{r['corrections']}</td><td>{r['labels_spent']}</td>"
        f"{interval(r)}<td>{html.escape(str(r['advice'] or 'n/a'))}</td>"
        + (f"<td>{r['true_remaining']}</td>" if truth else "") + "</tr>" for r in rows)
    random_rounds = [r["round"] for r in rows if r["mode"] == "random"]
    honest = (f"<p><b>Rounds {', '.join(map(str, random_rounds))} used random picks.</b> "
              f"{html.escape(NO_BETTER)}</p>" if random_rounds else "")
    plot = images.get("burndown.png")
    figure = (f'<figure><img alt="burn-down" src="data:image/png;base64,'
              f'{base64.b64encode(plot).decode()}"></figure>' if plot else "")
    return ("<h2>Rounds: the burn-down</h2>"
            f"<p>{html.escape(rounds.get('text', ''))}</p>{honest}"
            "<table><tr><th>round</th><th>picks</th><th>tasks</th><th>answered</th>"
            "<th>corrections</th><th>labels spent (review)</th><th>wrong labels left (est.)</th>"
            "<th>95% interval</th><th>advice</th>"
            + ("<th>really left (simulation)</th>" if truth else "") + f"</tr>{body}</table>"
            + figure)


def _stale_html(stale: str | None) -> str:
    return (f"<p style='border:2px solid #D55E00;padding:.5em'><b>Out of date:</b> "
            f"{html.escape(stale)}</p>" if stale else "")


def write_report(store: RunStore, config: RunConfig | None = None) -> dict:
    """Write ``report/report.json``, ``report/report.html`` and ``report/*.png``; ``config``'s
    ``[loop]`` sizes the next batch (default: the ``[studio]`` budget) and the stop rate.

    The folder is replaced as one unit (:meth:`RunStore.replace_folder`): everything is
    rendered first and the new folder swapped in whole, so a failure or an interruption leaves
    the previous report as it was, and no plot of an earlier report stays beside the new one."""
    config = config or RunConfig()
    report = build_report(store, next_batch=config.loop.batch or config.studio.budget,
                          stop_rate=config.loop.stop_rate)
    images = plots(report)
    files = {artifacts.REPORT_PLOT(name=name.removesuffix(".png")): data
             for name, data in images.items()}
    files[artifacts.REPORT_JSON.path] = (json.dumps(report, indent=2, ensure_ascii=False)
                                         + "\n").encode()
    files[artifacts.REPORT_HTML.path] = render_html(report, images).encode("utf-8")
    store.replace_folder(artifacts.REPORT_HTML.path.rsplit("/", 1)[0], files)
    log.info("report: %s", store.path(artifacts.REPORT_HTML.path))
    return report


__all__ = ["build_report", "write_report", "render_html", "plots"]
