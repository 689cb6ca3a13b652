"""``relabeler data``: read, validate and split the dataset into ``dataset/``.

Every other stage reads ``dataset/{train,eval,pool}.parquet``; nothing reads the source again.
With ``[data] noise_rate`` set (demos, simulations), training labels are flipped on purpose and
the truth stays beside them in the columns ``true_label`` and ``flipped``.

A rerun never destroys: the new source is read and validated completely, the new tables are
written beside the old ones, and only then swapped in (:meth:`RunStore.replace_folder`); a
failure on the way leaves the old dataset and its marker. The marker records the inputs (the
settings below and each source file's content version, :func:`file_version`), so a finished
stage asked for other inputs says what changed and asks for the old settings or ``--force``
instead of reporting the old result; settings not given at all take the finished dataset.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.config import DataConfig, RunConfig
from relabeler.data import inject_noise, load_dataset, write_split_tables
from relabeler.data.readers import file_version
from relabeler.errors import ConfigError, StageError
from relabeler.redact import is_masked, mask_url
from relabeler.store import RunStore

log = logging.getLogger(__name__)

STAGE = "data"
ARTIFACTS = tuple(artifacts.stage_outputs(STAGE))
FOLDER = "dataset"
#: the [data] keys whose change changes the dataset
SETTINGS = ("source", "eval_source", "pool_source", "id_col", "text_col", "label_col",
            "split_col", "eval_fraction", "pool_fraction", "sample", "seed", "on_bad_rows",
            "noise_rate", "noise_kind")
_SOURCES = ("source", "eval_source", "pool_source")


def _shown(key: str, value: Any) -> Any:
    """A [data] value as the marker records it and messages show it: a source URL without
    its password (:func:`~relabeler.redact.mask_url`), anything else as it is."""
    return mask_url(value) if key in _SOURCES and isinstance(value, str) else value


def input_fingerprint(cfg: DataConfig) -> dict:
    """The inputs a dataset is made from: the settings that matter and, per source file, the
    version of its content (a local file's sha256, a remote file's size and ETag or mtime).
    A source URL is recorded without its password."""
    # The marker is a plain file of the run folder (others may read it), so it keeps the
    # masked URL, not the password. The masked URL is also what is compared: a hash of the
    # full URL would let anyone who reads the marker try guessed passwords against it, and a
    # new password for the same file is no new data (the content version below still tells
    # a changed file).
    settings = {key: _shown(key, getattr(cfg, key)) for key in SETTINGS}
    if cfg.eval_noise_rate:  # recorded only when used: older markers stay valid
        settings["eval_noise_rate"] = cfg.eval_noise_rate
    # a masked URL (as the marker records it, taken back for a source not given now) has no
    # password left to read the file with: its content is not compared
    return {"settings": settings,
            "contents": {role: file_version(getattr(cfg, role)) for role in _SOURCES
                         if getattr(cfg, role) and not is_masked(getattr(cfg, role))}}


def input_changes(recorded: dict, current: dict) -> list[tuple[str | None, Any, str]]:
    """What differs between the fingerprint a marker recorded and the current one: (the
    [data] key, its recorded value, a phrase) each; the key is None for a source whose
    content changed. A source that cannot be read now (moved away) does not count as a
    change: the finished dataset is what the later stages read."""
    changes: list[tuple[str | None, Any, str]] = []
    # a marker written before source URLs were masked holds the password: masked here, it
    # names the same source as the current (masked) settings, and no message shows it
    old_settings = {key: _shown(key, value) for key, value in recorded.get("settings", {}).items()}
    new_settings = current["settings"]
    for key in SETTINGS:
        if key in old_settings and old_settings[key] != new_settings[key]:
            changes.append((key, old_settings[key], f"data.{key} was {old_settings[key]!r}, "
                                                    f"now {new_settings[key]!r}"))
    # recorded only when used: a marker without it was made with none (one that records no
    # settings at all, as a retrain version's, has nothing to compare)
    old_eval, new_eval = (settings.get("eval_noise_rate", 0.0)
                          for settings in (old_settings, new_settings))
    if old_eval != new_eval and set(old_settings) - {"source"}:
        changes.append(("eval_noise_rate", old_eval,
                        f"data.eval_noise_rate was {old_eval!r}, now {new_eval!r}"))
    for role, version in current["contents"].items():
        old = recorded.get("contents", {}).get(role)
        same_path = old_settings.get(role) == new_settings[role]
        if same_path and old is not None and version is not None and old != version:
            changes.append((None, None, f"the content of data.{role} {new_settings[role]} "
                                        f"changed"))
        elif same_path and version is None and old is not None:
            log.warning("dataset: data.%s %s cannot be read now; keeping the finished dataset",
                        role, new_settings[role])
    return changes


def refuse_changes(changes: list[str], what: str, redo: str) -> None:
    """A StageError naming each change since a finished stage was made, and how to redo it;
    nothing when there is none."""
    if changes:
        raise StageError(f"{what}: {'; '.join(changes)}. {redo}")


def _flip(labels: pd.Series, cfg: DataConfig, key: str, flag: str, split: str, *, seed: int,
          classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``inject_noise`` at ``cfg.<key>``; a rate the split cannot take (more flips than rows
    of a class that flips, or none at all) is a ConfigError naming the key and the flag,
    before anything is written."""
    rate = getattr(cfg, key)
    try:
        noisy, flipped = inject_noise(labels.to_numpy(), rate, kind=cfg.noise_kind, seed=seed,
                                      classes=classes)
    except ValueError as exc:
        raise ConfigError(f"data.{key} ({flag}) = {rate} with {cfg.noise_kind} noise: {exc}; "
                          f"lower it") from None
    if not len(labels):
        raise ConfigError(f"data.{key} ({flag}) = {rate}: the {split} split is empty, so "
                          f"there is no label to flip: give it rows (data.eval_fraction, "
                          f"--test-fraction in simulate; an eval file or a split column), or "
                          f"drop {flag}")
    if not flipped.any():
        raise ConfigError(f"data.{key} ({flag}) = {rate} flips no label of the {len(labels)} "
                          f"{split} rows (round({rate} x {len(labels)}) = 0): raise it, or "
                          f"use more rows")
    return noisy, flipped


REDO = "run `relabeler data --run {run} --force` with the settings you want"


def _set_flag(key: str, value: Any) -> str:
    """``--set data.KEY=VALUE`` as a shell reads it and ``--set`` parses it back: a string
    key takes its text as it is (quoted as TOML only where it is itself in quotes), any other
    a TOML literal; the whole is shell-quoted."""
    import shlex

    from relabeler.config_template import toml_literal

    quoted = isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] in "\"'"
    text = value if isinstance(value, str) and not quoted else toml_literal(value)
    return f"--set {shlex.quote(f'data.{key}={text}')}"


def prepare_dataset(store: RunStore, config: RunConfig, *, force: bool = False,
                    redo: str = REDO, asked: bool = True) -> dict:
    """Write ``dataset/`` unless it is there already from the same inputs; returns the stage
    info. ``redo``: how the error for other inputs tells the user to redo it (the verb's own
    way). ``asked``: the user ran the data stage (``relabeler data``), so a finished one is
    said to be kept; a later stage that makes sure of it says nothing then.

    Raises
    ------
    StageError
        The stage is finished but its inputs changed (without ``force``).
    DataError
        The source is bad; nothing in ``dataset/`` has been touched.
    """
    cfg = config.data
    fingerprint = input_fingerprint(cfg)
    if store.stage_done(STAGE) and not force:
        info = (store.stage_info(STAGE) or {}).get("info", {})
        # a marker written before fingerprints were recorded still names its source
        recorded = info.get("fingerprint", {"settings": {"source": info.get("source",
                                                                            cfg.source)}})
        changes = input_changes(recorded, fingerprint)
        # asked for now (given, or a source whose content changed) and merely defaulted
        asked = [c for c in changes if c[0] is None or c[0] in cfg.model_fields_set]
        if changes and not asked:
            # nothing given now asks for other data (`data --sample 300`, then `train`): the
            # finished dataset stands, and the config takes the settings it was made with
            for key, value, _ in changes:
                setattr(cfg, key, value)
            log.info("dataset: kept as prepared in %s (%s, not given now)", store.uri,
                     ", ".join(f"data.{key} = {value!r}" for key, value, _ in changes))
            return info
        same = " ".join(_set_flag(key, value) for key, value, _ in asked if key is not None)
        advice = redo.replace("{run}", store.uri)
        if redo == REDO and same:
            advice = (f"Give the settings it was made with ({same}, or in the config file), "
                      f"or {advice}")
        defaulted = [phrase for c in changes if c not in asked for phrase in (c[2],)]
        also = (f"; made again, it would take the defaults of the settings not given now as "
                f"well ({'; '.join(defaulted)}): give those to keep them" if defaulted else "")
        refuse_changes([phrase for _, _, phrase in asked],
                       f"dataset in {store.uri} was prepared from other inputs",
                       f"{advice[0].upper()}{advice[1:]} (the old dataset stays until the new "
                       f"one is complete{also})")
        if asked:
            log.info("dataset: already prepared in %s (use --force to redo)", store.uri)
        return info
    ds = load_dataset(
        cfg.source, id_col=cfg.id_col or None, text_col=cfg.text_col, label_col=cfg.label_col,
        split_col=cfg.split_col or None, eval_fraction=cfg.eval_fraction,
        pool_fraction=cfg.pool_fraction, sample=cfg.sample or None, seed=cfg.seed,
        on_bad_rows=cfg.on_bad_rows, eval_source=cfg.eval_source or None,
        pool_source=cfg.pool_source or None,
        # a file, --set or --id-col that names "id" wants that column, not generated ids
        require_id="id_col" in cfg.model_fields_set,
    )
    info = {"source": mask_url(cfg.source), "classes": ds.classes, "n_train": len(ds.train),
            "n_eval": len(ds.eval), "n_pool": len(ds.pool), "n_rejected": len(ds.rejected),
            "fingerprint": fingerprint}
    if cfg.noise_rate > 0:
        noisy, flipped = _flip(ds.train["label"], cfg, "noise_rate", "--noise", "training",
                               seed=cfg.seed, classes=ds.classes)
        ds.train = ds.train.assign(true_label=ds.train["label"], label=noisy,
                                   flipped=flipped.astype(bool))
        info.update(noise_rate=cfg.noise_rate, noise_kind=cfg.noise_kind,
                    n_flipped=int(np.sum(flipped)))
        log.info("dataset: flipped %d of %d training labels (%s noise) on purpose",
                 int(np.sum(flipped)), len(ds.train), cfg.noise_kind)
    if cfg.eval_noise_rate > 0:
        noisy, flipped = _flip(ds.eval["label"], cfg, "eval_noise_rate", "--eval-noise", "eval",
                               seed=cfg.seed + 1, classes=ds.classes)
        ds.eval = ds.eval.assign(true_label=ds.eval["label"], label=noisy,
                                 flipped=flipped.astype(bool))
        info.update(eval_noise_rate=cfg.eval_noise_rate, n_eval_flipped=int(np.sum(flipped)))
        log.info("dataset: flipped %d of %d eval labels on purpose", int(np.sum(flipped)),
                 len(ds.eval))
    _keeps_pushed_samples(store, ds)
    store.replace_folder(FOLDER, write_split_tables(ds), unmark=STAGE)
    store.mark_done(STAGE, info)
    log.info("dataset: %d train, %d eval, %d pool, %d rejected rows; classes %s",
             info["n_train"], info["n_eval"], info["n_pool"], info["n_rejected"], ds.classes)
    return info


def _keeps_pushed_samples(store: RunStore, ds) -> None:
    """Refuse a new dataset that drops samples this run pushed to Label Studio, or moves them
    to another split (a new seed or split fraction): their tasks and the answers to them
    would belong to no row (pull would keep them, retrain would fail on them), or count as
    another split's (a training row's correction read as an eval-audit answer)."""
    from relabeler.queue_plan import ACQUIRED, EVAL_AUDIT, read_manifest

    manifest = read_manifest(store)
    if manifest.empty:
        return
    split_of = {**dict.fromkeys(ds.pool["id"], "pool"), **dict.fromkeys(ds.eval["id"], "eval"),
                **dict.fromkeys(ds.train["id"], "train")}
    sent = {row.id: {ACQUIRED: "pool", EVAL_AUDIT: "eval"}.get(row.source, "train")
            for row in manifest.itertuples()}
    lost = sorted(x for x in sent if x not in split_of)
    moved = sorted(x for x in sent if x in split_of and split_of[x] != sent[x])
    if not lost and not moved:
        return
    what = []
    if lost:
        what.append(f"leaves out {len(lost)} (e.g. {lost[0]!r})")
    if moved:
        what.append(f"moves {len(moved)} to another split (e.g. {moved[0]!r}, sent as a "
                    f"{sent[moved[0]]} row, now in {split_of[moved[0]]})")
    raise StageError(
        f"the new dataset of {store.uri} {' and '.join(what)} of the {len(sent)} samples this "
        f"run pushed to Label Studio ({artifacts.MANIFEST.path}): their tasks and answers would "
        f"belong to no row or to another split. Prepare other data in a new run folder "
        f"(--run); the dataset here is unchanged")
