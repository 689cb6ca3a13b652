"""``relabeler retrain``: apply the people's corrections to a NEW dataset version and retrain.

Reads ``labels/corrections.parquet`` (id, old_label, new_label, action, …, source).
A relabel changes a training label; a drop excludes the sample; "not sure" and keep leave it
as it was; an acquired pool sample with an answer joins the training set. The original
``dataset/`` is never edited: version N lives in ``retrain/vN/`` (its own ``dataset/``,
``model/``, ``train/``), and every training row records where its label came from
(``label_source``: original, reviewed, corrected, acquired; ``previous_label``).

With ``dedupe`` (``relabeler retrain --dedupe``) the new training set keeps one row per group
of ``scores/duplicates.parquet`` (:func:`dedupe_training`), so a text repeated many times
weighs as one.

With ``[train] debias`` (``relabeler retrain --debias reweight|mask``) the new model is trained
against the shortcut tokens of the run's ``scores/shortcuts.parquet`` (:mod:`relabeler.debias`),
and with ``[train] class_weights = balanced`` with class-balanced loss weights;
``comparison.json`` records what was done under ``"mitigation"``.

The new model trains with the baseline's configuration, seed and class order, and both models
are evaluated on the same eval split: ``retrain/vN/comparison.json``.

Eval audit: answers to eval rows (source ``eval_audit``, or any id of the eval split) never
touch the training set. They make a new eval version, ``retrain/vN/dataset/eval_audited.parquet``
(the eval rows with their audited label: a relabel changes it, a drop removes the row, keep and
"not sure" leave it; ``label_source`` and ``previous_label`` say which), and both models are
scored on it too: ``comparison.json`` gains ``"audited"``. ``dataset/eval.parquet`` is never
edited, and ``retrain/vN/dataset/eval.parquet`` stays the original labels.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from relabeler import artifacts
from relabeler.config import ModelConfig, RunConfig, TrainConfig
from relabeler.corrections import (
    ACTIONS,
    CORRECTIONS,
    corrections_fingerprint,
    empty_label,
    refuse_repeated_ids,
    split_eval_answers,
    warn_other_old_labels,
)
from relabeler.data import read_split
from relabeler.errors import ConfigError, DataError, StageError
from relabeler.jobs.stage_settings import setting_changes
from relabeler.jobs.train import run_train, trained_model_settings, training_settings
from relabeler.model import POOL_LAYERS_KEY, POOLING_KEY
from relabeler.stage_chain import run_first
from relabeler.store import RunStore

log = logging.getLogger(__name__)

STAGE = "retrain"


def version_pool(pool: pa.Table, corrections: pd.DataFrame) -> pa.Table:
    """A dataset version's pool: the run's pool less the rows people labeled (they joined
    the training set: :func:`apply_corrections`) or dropped as invalid, so that no id is in two
    splits and no answered row is acquired again; a pool row answered "Not sure" stays. The
    table's columns and types are the run's."""
    answered = corrections.loc[corrections["action"].isin(("relabel", "keep", "drop")), "id"]
    value_set = pa.array(sorted(set(answered.astype(str))), pa.string())
    return pool.filter(pc.invert(pc.is_in(pool.column("id"), value_set=value_set)))


def apply_corrections(train: pd.DataFrame, pool: pd.DataFrame, corrections: pd.DataFrame,
                      classes: list[str], *, source: str = CORRECTIONS) -> tuple[pd.DataFrame,
                                                                                 dict]:
    """The corrected training set and counts of what changed.

    Raises
    ------
    DataError
        Empty corrections, a missing column, an unknown action, an id in neither train nor
        pool, or a new label that is not a class; the message names the file and the row.
    """
    needed = {"id", "new_label", "action"}
    missing = needed - set(corrections.columns)
    if missing:
        raise DataError(f"{source}: missing columns {sorted(missing)}")
    if corrections.empty:
        raise DataError(f"{source} is empty: there is nothing to retrain on")
    refuse_repeated_ids(corrections, source=source)
    train_ids, pool_ids = set(train["id"]), set(pool["id"])
    # rows are named by their place in the file (the index), also when eval answers were split off
    for row, item in zip(corrections.index, corrections.itertuples(index=False), strict=True):
        if item.action not in ACTIONS:
            raise DataError(f"{source}, row {row}: action {item.action!r} is not one of "
                            f"{', '.join(ACTIONS)}")
        if item.id not in train_ids and item.id not in pool_ids:
            raise DataError(f"{source}, row {row}: id {item.id!r} is in neither the training "
                            f"set nor the pool of this run")
        labels_it = item.action == "relabel" or (item.action == "keep" and item.id in pool_ids)
        if labels_it and empty_label(item.new_label):
            what = "a relabel" if item.action == "relabel" else "a keep of a pool row"
            raise DataError(f"{source}, row {row}: new_label is empty (missing): {what} needs a "
                            f"class ({', '.join(classes)})")
        if labels_it and item.new_label not in classes:
            raise DataError(f"{source}, row {row}: new_label {item.new_label!r} is not a "
                            f"class ({', '.join(classes)})")
    warn_other_old_labels(corrections, train.set_index("id")["label"], source=source)

    by_id = corrections.set_index("id")
    out = train.copy()
    out["previous_label"] = out["label"]
    out["label_source"] = "original"
    hit = out["id"].isin(by_id.index)
    actions = out.loc[hit, "id"].map(by_id["action"])
    relabel = actions[actions == "relabel"].index
    out.loc[relabel, "label"] = out.loc[relabel, "id"].map(by_id["new_label"])
    out.loc[relabel, "label_source"] = np.where(
        out.loc[relabel, "label"] != out.loc[relabel, "previous_label"], "corrected", "reviewed")
    out.loc[actions[actions == "keep"].index, "label_source"] = "reviewed"
    dropped = actions[actions == "drop"].index
    out = out.drop(index=dropped)

    pool_answers = corrections[corrections["id"].isin(pool_ids)
                               & corrections["action"].isin(("relabel", "keep"))]
    acquired = pool.set_index("id").loc[pool_answers["id"]].reset_index()
    acquired["label"] = pool_answers["new_label"].to_numpy()
    acquired["previous_label"] = None
    acquired["label_source"] = "acquired"
    columns = list(out.columns)
    for column in columns:
        if column not in acquired.columns:
            acquired[column] = None
    out = pd.concat([out, acquired[columns]], ignore_index=True)
    counts = {
        "reviewed": int(hit.sum()),
        "changed": int((out["label_source"] == "corrected").sum()),
        "dropped": int(len(dropped)),
        "unsure": int((actions == "unsure").sum()),
        "acquired": int(len(acquired)),
        "n_train_before": int(len(train)),
        "n_train_after": int(len(out)),
    }
    return out.reset_index(drop=True), counts


def audit_eval(evaluation: pd.DataFrame, answers: pd.DataFrame, classes: list[str], *,
               source: str = CORRECTIONS) -> tuple[pd.DataFrame, dict]:
    """The audited eval split and its counts: a relabel sets the label (``corrected`` when it
    differs, else ``reviewed``), keep marks it ``reviewed``, drop removes the row, "not sure"
    leaves it ``original``. DataError for an answer to an id not in the eval split, an id
    answered more than once, an unknown action or a new label that is not a class."""
    refuse_repeated_ids(answers, source=source, what="eval answer id")
    eval_ids = set(evaluation["id"])
    for row, item in zip(answers.index, answers.itertuples(index=False), strict=True):
        if item.id not in eval_ids:
            raise DataError(f"{source}, row {row}: eval-audit answer {item.id!r} is not an eval "
                            f"row")
        if item.action not in ACTIONS:
            raise DataError(f"{source}, row {row}: eval answer action {item.action!r} is not "
                            f"one of {', '.join(ACTIONS)}")
        if item.action == "relabel" and empty_label(item.new_label):
            raise DataError(f"{source}, row {row}: eval answer new_label is empty (missing): a "
                            f"relabel needs a class ({', '.join(classes)})")
        if item.action == "relabel" and item.new_label not in classes:
            raise DataError(f"{source}, row {row}: eval answer new_label {item.new_label!r} is "
                            f"not a class ({', '.join(classes)})")
    warn_other_old_labels(answers, evaluation.set_index("id")["label"], source=source,
                          split="eval")
    by_id = answers.set_index("id")
    out = evaluation.copy()
    out["previous_label"] = out["label"]
    out["label_source"] = "original"
    actions = out["id"].map(by_id["action"])
    relabel = actions == "relabel"
    out.loc[relabel, "label"] = out.loc[relabel, "id"].map(by_id["new_label"])
    out.loc[relabel, "label_source"] = np.where(
        out.loc[relabel, "label"] != out.loc[relabel, "previous_label"], "corrected", "reviewed")
    out.loc[actions == "keep", "label_source"] = "reviewed"
    out = out[actions != "drop"].reset_index(drop=True)
    counts = {"audited": int(actions.notna().sum()),
              "changed": int((out["label_source"] == "corrected").sum()),
              "dropped": int((actions == "drop").sum()),
              "unsure": int((actions == "unsure").sum()), "n_eval": int(len(out))}
    return out, counts


#: label sources of rows whose label people gave (see apply_corrections)
ANSWERED = ("corrected", "reviewed", "acquired")


def dedupe_training(train: pd.DataFrame, duplicates: pd.DataFrame) -> tuple[pd.DataFrame,
                                                                             dict]:
    """One training row per duplicate group, carrying the group's resolved label.

    ``train``: the corrected training set (:func:`apply_corrections`: ``label_source``);
    ``duplicates``: ``scores/duplicates.parquet`` (group_id, id, ...), of which only the rows
    in ``train`` count. A group's resolved label is the majority of the labels people gave its
    rows when they answered any, else the majority of its labels. The row kept is the first by
    id that carries the resolved label (among the answered rows when there are any), so no
    label is rewritten. A group whose deciding labels tie (ham once, spam once) has no resolved
    label: all its rows stay, and it is counted ``unresolved`` (its conflict is the
    queue's and the report's to show; a pick by id order would train on a label nothing
    supports).

    Returns the kept rows in their order and ``{"groups", "dropped", "unresolved"}``.
    """
    sources = train.get("label_source", pd.Series("original", index=train.index))
    members = duplicates[["group_id", "id"]].merge(
        pd.DataFrame({"id": train["id"], "label": train["label"], "source": sources}),
        on="id", how="inner").sort_values(["group_id", "id"], kind="stable")
    members = members[members.groupby("group_id")["id"].transform("size") > 1]
    keep = []
    unresolved = 0
    for _, rows in members.groupby("group_id", sort=True):
        answered = rows[rows["source"].isin(ANSWERED)]
        voters = answered if len(answered) else rows
        counts = voters["label"].value_counts()
        if (counts == counts.max()).sum() > 1:
            keep.extend(rows["id"])
            unresolved += 1
            continue
        keep.append(voters.loc[voters["label"] == counts.index[0], "id"].iloc[0])
    dropped = set(members["id"]) - set(keep)
    out = train[~train["id"].isin(dropped)].reset_index(drop=True)
    if unresolved:
        log.warning("retrain --dedupe: %d duplicate groups kept whole: their labels (the "
                    "answered ones where any) tie (the report's conflicting groups)", unresolved)
    return out, {"groups": int(members["group_id"].nunique()), "dropped": len(dropped),
                 "unresolved": unresolved}


def version_folds(labels: pd.Series, folds: int, version: int) -> int:
    """The out-of-fold models dataset version ``version`` trains: ``folds``, or, where the
    corrections left a class with fewer training rows than that (each fold holds out a row of
    every class), as many as the smallest class has, logged; none when a class is down to one
    row (the version is scored without the out-of-fold view, logged). A round goes on either
    way, where a baseline with too few rows stops (:func:`relabeler.jobs.folds.check_folds`).
    Rows are counted, not texts: :func:`relabeler.jobs.folds.stratified_folds` spreads a class
    whose copies would all sit in one fold."""
    if not folds:
        return 0
    counts = labels.value_counts()
    small = counts[counts < folds].sort_index()
    if not len(small):
        return folds
    fewest = int(small.min())
    shown = ", ".join(f"{label!r} has {n} training row{'s' * (n != 1)}"
                      for label, n in small.items())
    if fewest >= 2:
        log.warning("retrain: after the corrections %s, fewer than train.folds = %d: version %d "
                    "trains %d out-of-fold models", shown, folds, version, fewest)
        return fewest
    log.warning("retrain: after the corrections %s: a fold model that holds out a class's only "
                "row never sees that class, so version %d trains no out-of-fold models "
                "(train.folds = %d) and is scored without the out-of-fold view", shown, version,
                folds)
    return 0


@contextmanager
def _removed_on_failure(store: RunStore, folder: str) -> Iterator[None]:
    """Remove ``folder`` if the block fails: a version without its model is no version."""
    try:
        yield
    except BaseException:
        store.remove(folder)
        raise


#: the file a dataset version writes last: a ``retrain/vN`` folder without it is a retrain that
#: was stopped (a killed process runs no cleanup)
COMPLETE = "comparison.json"


def _version_folders(store: RunStore) -> dict[int, bool]:
    """Every ``retrain/vN`` folder's N, and whether it is complete (:data:`COMPLETE`)."""
    folders: dict[int, bool] = {}
    for _, name, *rest in (p.split("/") for p in store.list("retrain") if p.count("/") >= 2):
        if name[:1] == "v" and name[1:].isdigit():
            number = int(name[1:])
            folders[number] = folders.get(number, False) or rest == [COMPLETE]
    return dict(sorted(folders.items()))


def dataset_versions(store: RunStore) -> list[int]:
    """The numbers N of the run's complete ``retrain/vN`` folders, ascending."""
    return [n for n, complete in _version_folders(store).items() if complete]


#: what a version folder holds while it is built: the builder's host, pid and start
BUILDING = "_building.json"


def _next_version(store: RunStore) -> int:
    """The number of the version to build now. The ``retrain/vN`` folders a stopped retrain
    left incomplete above every complete one (a killed process runs no cleanup) are removed
    first, so the new version takes their number and nothing reads them; one another process
    of this host or another host is building (:data:`BUILDING` names it) is left alone."""
    from relabeler.locks import lock_holder_gone, read_lock_holder

    folders = _version_folders(store)
    last = max((n for n, complete in folders.items() if complete), default=0)
    taken = last
    for number, complete in folders.items():
        if complete or number < last:
            continue
        folder = artifacts.RETRAIN(n=number)
        holder = read_lock_holder(store, f"{folder}/{BUILDING}")
        if holder and not lock_holder_gone(holder, None):
            log.info("retrain: %s is being built by process %s on %s; this version comes after "
                     "it", folder, holder.get("pid"), holder.get("host"))
            taken = max(taken, number)
            continue
        log.warning("retrain: removing %s, left incomplete by a retrain that was stopped",
                    folder)
        store.remove(folder)
    return taken + 1


def retrain_mitigation(store: RunStore, config: RunConfig) -> dict:
    """What the retrain mitigates, as its marker records it: a retrain that would mitigate
    otherwise (another rate, more tokens, or other tokens since ``score --force``) is redone."""
    tc = config.train
    mitigation: dict = {"debias": tc.debias, "class_weights": tc.class_weights}
    if tc.debias == "none":
        return mitigation
    if not store.exists(artifacts.SHORTCUTS.path):
        raise StageError(f"retrain --debias {tc.debias} needs {artifacts.SHORTCUTS.path}: run "
                         f"`relabeler score --run {store.uri}` first")
    from relabeler.debias import tokens_to_mitigate

    mitigation["tokens"] = tokens_to_mitigate(store.read_table(artifacts.SHORTCUTS.path)
                                              .to_pandas(), top=tc.debias_top,
                                              debias=tc.debias)
    if tc.debias == "mask":
        mitigation["mask_rate"] = tc.debias_mask_rate
    return mitigation


def run_retrain(store: RunStore, config: RunConfig, *, force: bool = False,
                progress: bool = True, dedupe: bool = False, folds: int = 0) -> dict:
    """Build dataset version N from the corrections (with ``dedupe``, one row per duplicate
    group of ``scores/duplicates.parquet``), retrain, and compare on eval. ``folds``: train
    that many out-of-fold models too (``relabeler next`` re-scores the version with them),
    fewer where the corrections left a class with fewer rows (:func:`version_folds`;
    ``folds_trained`` in the result)."""
    if not store.exists(CORRECTIONS):
        raise StageError(f"retrain needs {CORRECTIONS}: pull the people's answers first "
                         f"(`relabeler pull --run {store.uri}`)")
    if not store.stage_done("train"):
        raise StageError(run_first(store, "train", "retrain needs the baseline model"))
    if not store.read_table(artifacts.EVAL.path, columns=["id"]).num_rows:
        raise StageError(f"retrain compares the new model with the baseline on the eval split, "
                         f"and {store.uri} has no eval rows (data.eval_fraction = 0, as "
                         f"find_label_issues makes its runs): make a run that holds eval rows "
                         f"out (data.eval_fraction > 0) to retrain and report")
    mitigation = retrain_mitigation(store, config)
    if dedupe and not store.exists(artifacts.DUPLICATES.path):
        raise StageError(f"retrain --dedupe needs {artifacts.DUPLICATES.path}: run `relabeler "
                         f"score --run {store.uri}` first")
    corrections_table = store.read_table(CORRECTIONS)
    fingerprint = corrections_fingerprint(corrections_table)
    info = store.stage_info(STAGE)
    if info and not store.redo(STAGE, force) and \
            info["info"].get("corrections") == fingerprint and \
            info["info"].get("dedupe", False) == dedupe and \
            info["info"].get("folds", 0) >= folds and \
            info["info"].get("mitigation", mitigation) == mitigation:
        log.info("retrain: version %d already used these corrections (use --force to redo)",
                 info["info"]["version"])
        return info["info"]
    finished = None if force else _finished_version(store, fingerprint, dedupe=dedupe,
                                                     folds=folds, mitigation=mitigation)
    if finished is not None:
        return finished
    started = time.perf_counter()
    classes = store.read_json(artifacts.LABELS.path)
    train = read_split(store.read_table(artifacts.TRAIN.path))
    pool = read_split(store.read_table(artifacts.POOL.path))
    evaluation = read_split(store.read_table(artifacts.EVAL.path))
    corrections, eval_answers = split_eval_answers(corrections_table.to_pandas(),
                                                   set(evaluation["id"]))
    if corrections.empty and len(eval_answers):
        log.info("retrain: only eval-audit answers; the training set is the baseline's")
        new_train = train.assign(previous_label=train["label"], label_source="original")
        counts = {"reviewed": 0, "changed": 0, "dropped": 0, "unsure": 0, "acquired": 0,
                  "n_train_before": int(len(train)), "n_train_after": int(len(train))}
    else:
        new_train, counts = apply_corrections(train, pool, corrections, classes)
    audited = audit_eval(evaluation, eval_answers, classes) if len(eval_answers) else None
    if audited is not None and audited[0].empty:
        log.warning("retrain: the eval audit dropped all %d eval rows: no audited eval is left "
                    "to score on, so the models are compared on the original labels only",
                    len(evaluation))
        audited = None
    deduped = None
    if dedupe:
        duplicates = store.read_table(artifacts.DUPLICATES.path).to_pandas()
        new_train, deduped = dedupe_training(new_train, duplicates)
        counts.update(deduped=deduped["dropped"], dedupe_unresolved=deduped["unresolved"],
                      n_train_after=int(len(new_train)))

    version = _next_version(store)
    trained_folds = version_folds(new_train["label"], folds, version)
    folder = artifacts.RETRAIN(n=version)
    sub = RunStore(store.path(folder))
    with _removed_on_failure(store, folder):
        sub.write_json(BUILDING, {"host": socket.gethostname(), "pid": os.getpid(),
                                  "started": datetime.now(UTC).isoformat()})
        sub.write_table(artifacts.TRAIN.path,
                        pa.Table.from_pandas(new_train, preserve_index=False))
        sub.write_table(artifacts.EVAL.path, store.read_table(artifacts.EVAL.path))
        sub.write_table(artifacts.POOL.path, version_pool(
            store.read_table(artifacts.POOL.path), corrections))
        if audited is not None:
            sub.write_table(artifacts.EVAL_AUDITED_FILE, pa.Table.from_pandas(
                audited[0], preserve_index=False))
        provenance = {"parent": store.uri, "corrections": fingerprint, "version": version,
                      "dedupe": dedupe, "mitigation": mitigation, "folds": folds,
                      "folds_trained": trained_folds, **counts}
        sub.mark_done("data", provenance)
        retrain_config = baseline_config(store, config, trained_folds)
        shortcuts = (store.read_table(artifacts.SHORTCUTS.path).to_pandas()
                     if store.exists(artifacts.SHORTCUTS.path) else None)
        run_train(sub, retrain_config, force=True, progress=progress, classes=classes,
                  shortcuts=shortcuts)

        comparison = compare_models(store.read_table(artifacts.EVAL_PREDICTIONS.path),
                                    sub.read_table(artifacts.EVAL_PREDICTIONS.path), classes)
        comparison["corrections"] = counts
        comparison["mitigation"] = sub.read_json(artifacts.METRICS.path)["mitigation"]
        if deduped is not None:
            comparison["dedupe"] = deduped
        if audited is not None:
            comparison["audited"] = {
                **compare_models(store.read_table(artifacts.EVAL_PREDICTIONS.path),
                                 sub.read_table(artifacts.EVAL_PREDICTIONS.path), classes,
                                 labels=dict(zip(audited[0]["id"], audited[0]["label"],
                                                 strict=True))),
                "audit": audited[1]}
        sub.write_json(COMPLETE, comparison)  # it makes the version complete
        result = _result(provenance, comparison)
        result["seconds"] = round(time.perf_counter() - started, 2)
        # the marker before the builder's note goes: a retrain stopped between the two leaves
        # a complete version the marker names (a stale note in a complete folder is not read),
        # where the other order built the same corrections again as a version N + 1
        store.mark_done(STAGE, result)
    sub.remove(BUILDING)
    log.info("retrain: version %d, eval accuracy %.4f -> %.4f (%d changed, %d dropped, "
             "%d acquired)", version, result["before"], result["after"], counts["changed"],
             counts["dropped"], counts["acquired"])
    return result


def _result(provenance: dict, comparison: dict) -> dict:
    """The retrain marker's info: the version's provenance and its accuracies."""
    audited = comparison.get("audited")
    return {**provenance, "before": comparison["before"]["accuracy"],
            "after": comparison["after"]["accuracy"],
            **({"audited": {"before": audited["before"]["accuracy"],
                            "after": audited["after"]["accuracy"]}} if audited else {})}


def _finished_version(store: RunStore, fingerprint: str, *, dedupe: bool, folds: int,
                      mitigation: dict) -> dict | None:
    """The marker info of the latest complete version when it was built, after the baseline
    was last trained, from exactly these corrections and settings, and the stage was stopped
    before its marker was written (it is written now, and the info returned); else None. A
    rerun then keeps that version instead of building the same one again as N + 1."""
    versions = dataset_versions(store)
    if not versions:
        return None
    version = RunStore(store.path(artifacts.RETRAIN(n=versions[-1])))
    made = version.stage_info("data") or {}
    provenance = made.get("info") or {}
    baseline = store.stage_info("train") or {}
    if (provenance.get("corrections") != fingerprint
            or provenance.get("dedupe", False) != dedupe
            or provenance.get("folds", 0) < folds
            or provenance.get("mitigation") != mitigation
            or str(made.get("finished_at", "")) < str(baseline.get("finished_at", "~"))):
        return None
    result = _result(provenance, version.read_json(COMPLETE))
    log.warning("retrain: version %d was built from these corrections by a retrain stopped "
                "before it recorded it; kept (use --force to build a new one)",
                provenance["version"])
    store.mark_done(STAGE, result)
    return result


#: [train] keys a retrain takes from the command, not from the baseline: what ``--debias`` and
#: ``--class-weights`` mitigate is the point of the retrain (``folds`` comes from the caller).
RETRAIN_OWN = ("folds", "debias", "debias_mask_rate", "debias_top", "class_weights")
#: keys that depend on the machine, taken from the config now (a difference is named): where
#: the pretrained model lies, the encoder cache's folder and size on disk, and the batch a GPU
#: holds
MACHINE = ("model.name", "model.cache_dir", "model.cache_max_gb", "train.batch_size")


def baseline_config(store: RunStore, config: RunConfig, folds: int) -> RunConfig:
    """``config`` with the [train] and [model] settings the baseline model was trained with
    (its train marker records them; ``train.mode`` as it resolved, so ``auto`` cannot turn
    into another mode on another machine), less :data:`RETRAIN_OWN` and the encoder cache's
    folder: a gain is the relabeling's, not a change of settings. A setting given now that
    differs is named in a warning. Before markers recorded settings: ``config`` with the saved
    model's pooling (models saved before the settings existed pooled [CLS], or their last
    layer)."""
    out = copy.deepcopy(config)
    out.train.folds = folds
    info = (store.stage_info("train") or {}).get("info", {})
    recorded = info.get("settings")
    if not recorded:
        saved = store.read_json("model/config.json")
        out.model.pooling = saved.get(POOLING_KEY) or "cls"
        out.model.pool_layers = saved.get(POOL_LAYERS_KEY) or 1
        return out
    now = {f"train.{key}" for key in RETRAIN_OWN} | set(MACHINE)  # not the baseline's
    baseline = {section: {key: value for key, value in values.items()
                          if f"{section}.{key}" not in now}
                for section, values in recorded.items()}
    machine = {section: {key: value for key, value in values.items()
                         if f"{section}.{key}" in MACHINE}
               for section, values in recorded.items()}
    current = training_settings(config)
    ignored = setting_changes(baseline, current, resolved_mode=info.get("mode"),
                              resolved=trained_model_settings(store))
    differs = setting_changes(machine, current)
    train = {key: value for key, value in baseline.get("train", {}).items()
             if key in TrainConfig.model_fields}
    model = {key: value for key, value in baseline.get("model", {}).items()
             if key in ModelConfig.model_fields}
    if info.get("mode") in ("full", "head"):
        train["mode"] = info["mode"]
    try:
        out.train = TrainConfig(**{**out.train.model_dump(), **train})
        out.model = ModelConfig(**{**out.model.model_dump(), **model})
    except ValidationError as exc:
        raise ConfigError(f"retrain: the settings the baseline in {store.uri} recorded are not "
                          f"valid now ({exc.errors()[0]['msg']}); train a new baseline "
                          f"(`relabeler train --run {store.uri} --force`)") from None
    if ignored:
        log.warning("retrain: the new model trains with the baseline's settings, for a fair "
                    "comparison; ignored: %s (to change them, train a new baseline: "
                    "`relabeler train --run %s --force`)", "; ".join(ignored), store.uri)
    if differs:
        log.warning("retrain: taken from the config now, as this machine needs: %s (the same "
                    "pretrained model is assumed)", "; ".join(differs))
    return out


def compare_models(before: pa.Table, after: pa.Table, classes: list[str], *,
                   labels: dict[str, str] | None = None) -> dict:
    """Accuracy and F1 of two models' predictions on the same eval samples; with ``labels``
    (id -> label, e.g. the audited eval labels) only those rows, scored against those labels."""
    from relabeler.training import classification_metrics

    a = before.to_pandas().set_index("id")
    if labels is not None:
        a = a.loc[[i for i in a.index if i in labels]].copy()
        a["label"] = [labels[i] for i in a.index]
    b = after.to_pandas().set_index("id").reindex(a.index)
    if b["pred"].isna().any():
        raise StageError("the two models were evaluated on different eval samples")
    index = {c: i for i, c in enumerate(classes)}
    labels = a["label"].map(index).to_numpy(dtype=np.int64)
    out = {}
    for name, frame in (("before", a), ("after", b)):
        probs = np.stack(frame["probs"].to_numpy())
        out[name] = classification_metrics(labels, probs, classes)
    out["n_eval"] = int(len(a))
    return out
