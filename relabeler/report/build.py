"""``relabeler report``: what the relabeling bought, with 95% intervals.

Reads the latest retrain (``retrain/vN/``), the corrections, the push manifest, the duplicate
groups (:mod:`relabeler.report.duplicates`) and, when the truth is known (simulations, demos),
the injected noise. Writes ``report/report.json``, a self-contained ``report/report.html``
(plots embedded) and the plots as ``report/*.png``.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.config import RunConfig
from relabeler.corrections import corrections_fingerprint, split_eval_answers
from relabeler.errors import DataError, StageError
from relabeler.report.annotators import annotators_section
from relabeler.report.duplicates import duplicates_section
from relabeler.report.remaining import (
    ANSWERED,
    advice_text,
    estimate_remaining,
    stored_chances,
    true_remaining,
)
from relabeler.report.render import plots, render_html
from relabeler.report.rounds import (
    REVIEW,
    burn_down,
    burn_down_text,
    labels_given,
    review_answers,
)
from relabeler.report.set_aside import set_aside_section
from relabeler.report.shortcuts import shortcut_section
from relabeler.report.stats import paired_gain, rate_interval
from relabeler.report.thin_regions import steered_gain, thin_region_section
from relabeler.report.versions import version_rows, version_settings
from relabeler.stage_chain import run_first
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
        # nothing reviewed: no rate and no interval (report.json said [0.0, 0.0], a measured
        # 0% to whoever reads the file)
        out[source] = {"reviewed": int(len(part)), "corrected": changed,
                       "rate": changed / len(part) if len(part) else None,
                       "ci95": rate_interval(changed, len(part)) if len(part) else None}
    flagged, control = out["flagged"]["rate"], out["random_control"]["rate"]
    out["lift"] = flagged / control if flagged is not None and control else None
    # a lower bound that exists even when no control needed a change: the flagged rate's lower
    # 95% limit over the control rate's upper one
    high = (out["random_control"]["ci95"] or [None, None])[1]
    out["lift_lower"] = out["flagged"]["ci95"][0] / high if flagged and high else None
    return out


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
    if store.stale("retrain") is not None:  # version N beside another baseline: no gain
        raise StageError(run_first(store, "retrain", f"report: retrain version {version} was "
                                   f"made before the baseline it is compared with"))
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
    # a keep leaves a training row's label as it was (new_label is empty for keep); a pool
    # row's keep labels it with new_label, as retrain reads it
    kept = (reviewed["action"] == "keep") & reviewed["old_label"].notna()
    matrix = pd.crosstab(reviewed["old_label"].fillna("(pool)"),
                         reviewed["new_label"].where(~kept, reviewed["old_label"]))
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
        "settings": version_settings(sub),
        "stale": stale,
        "classes": classes,
        "eval": evaluation,
        "eval_unsteered": steered_gain(store, sub, before, after, classes),
        "versions": version_rows(store, before, classes),
        "corrections": {k: counts.get(k) for k in ("reviewed", "changed", "dropped", "unsure",
                                                   "acquired", "deduped", "dedupe_unresolved",
                                                   "n_train_before", "n_train_after")},
        "correction_matrix": {str(old): {str(new): int(v) for new, v in row.items() if v}
                              for old, row in matrix.iterrows()},
        "set_aside": set_aside_section(store),
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
        "shortcuts": shortcut_section(store, {cls: leaves["recall"]["after"] for cls, leaves
                                              in evaluation["per_class"].items()}, version),
        "thin_regions": thin_region_section(store),
        "duplicates": duplicates_section(store, before, after, classes, trained=(
            set(sub.read_table(artifacts.TRAIN.path, columns=["id"]).column("id").to_pylist())
            if sub.exists(artifacts.TRAIN.path) else None), version=version,
            **_version_labels(store, sub, version)),
        "annotators": annotators_section(store, corrections, audit_answers),
    }
    return report


def _version_labels(store: RunStore, sub: RunStore, version: int) -> dict:
    """The labels of dataset version ``version`` (``sub``: its ``retrain/vN/``): id -> label
    of its training and eval rows, from ``retrain/vN/dataset/`` (the baseline's ``dataset/``
    where that version's training split is not on disk), and which labels they are in words:
    ``{"labels": ..., "labels_from": ...}``."""
    found = sub if sub.exists(artifacts.TRAIN.path) else store
    where = (f"dataset version {version}'s (retrain/v{version}/dataset/)" if found is sub else
             f"the baseline dataset's (dataset/, version 0): version {version}'s training "
             f"split is not on disk")
    # the eval labels relabeling leaves as they were (the audit's are apart): the baseline's
    # where the version has none on disk
    labels = [(found if found.exists(split.path) else store).read_table(
        split.path, columns=["id", "label"]).to_pandas() for split in (artifacts.TRAIN,
                                                                      artifacts.EVAL)]
    frame = pd.concat(labels, ignore_index=True).drop_duplicates("id", keep="first")
    return {"labels": frame.set_index("id")["label"], "labels_from": where}


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


HIGH_SUSPICION = 0.9  # an eval label with at most a 10% chance of being right
LIKELY_WRONG = 0.5  # an eval label likelier wrong than right


def _eval_audit(store: RunStore, answers: pd.DataFrame, top: int = 10) -> dict:
    """The eval rows whose labels most deserve a second look before the gain is trusted: the
    highest-ranked ones the eval audit has not answered (keep, relabel or drop; ``answers``:
    the audit's), and how many of the ranked rows it has."""
    if not store.exists(artifacts.EVAL_SUSPECTS.path):
        return {}
    ranked = store.read_table(artifacts.EVAL_SUSPECTS.path).to_pandas().sort_values(
        "rank", kind="stable")
    done = ranked["id"].isin(set(answers.loc[answers["action"].isin(ANSWERED), "id"]))
    # on the probability scale whatever the ranking: under class-conditional noise the suspect
    # score is a mean rank, and its top tenth is always 0.9 or more. None for a ranking made
    # before the column existed (score again to get it)
    disputed = (ranked["wrong_probability"] >= HIGH_SUSPICION
                if "wrong_probability" in ranked.columns else None)
    chance = "wrong_probability" in ranked.columns
    likely = ranked["wrong_probability"] >= LIKELY_WRONG if chance else None
    columns = ["id", "given_label", "suggested_label", "suspect_score"] + (
        ["wrong_probability"] if chance else [])
    listed = ranked[~done].head(top)[columns]
    return {"ranked": int(len(ranked)),
            "high_suspicion": None if disputed is None else int(disputed.sum()),
            "audited": int(done.sum()),
            "high_suspicion_unaudited": (None if disputed is None
                                         else int((disputed & ~done).sum())),
            # rows not audited yet whose label is likelier wrong than right, and the highest
            # chance of a wrong label among them all: what the advice to review rests on
            "likely_wrong_unaudited": None if likely is None else int((likely & ~done).sum()),
            "max_wrong_probability_unaudited": (
                None if not chance or done.all() else
                float(ranked.loc[~done, "wrong_probability"].max())),
            "top": listed.to_dict("records")}


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
