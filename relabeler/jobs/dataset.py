"""``relabeler data``: read, validate and split the dataset into ``dataset/``.

Every other stage reads ``dataset/{train,eval,pool}.parquet``; nothing reads the source again.
With ``[data] noise_rate`` set (demos, simulations), training labels are flipped on purpose and
the truth stays beside them in the columns ``true_label`` and ``flipped``.
"""

from __future__ import annotations

import logging

import numpy as np

from relabeler import artifacts
from relabeler.config import RunConfig
from relabeler.data import inject_noise, load_dataset, write_split_tables
from relabeler.store import RunStore

log = logging.getLogger(__name__)

STAGE = "data"
ARTIFACTS = tuple(artifacts.stage_outputs(STAGE))


def prepare_dataset(store: RunStore, config: RunConfig, *, force: bool = False) -> dict:
    """Write ``dataset/`` unless it is there already; returns the stage info."""
    if store.stage_done(STAGE) and not force:
        log.info("dataset: already prepared in %s (use --force to redo)", store.uri)
        return (store.stage_info(STAGE) or {}).get("info", {})
    store.reset_stage(STAGE, ARTIFACTS)
    cfg = config.data
    ds = load_dataset(
        cfg.source, id_col=cfg.id_col or None, text_col=cfg.text_col, label_col=cfg.label_col,
        split_col=cfg.split_col or None, eval_fraction=cfg.eval_fraction,
        pool_fraction=cfg.pool_fraction, sample=cfg.sample or None, seed=cfg.seed,
        on_bad_rows=cfg.on_bad_rows, eval_source=cfg.eval_source or None,
        pool_source=cfg.pool_source or None,
    )
    info = {"source": cfg.source, "classes": ds.classes, "n_train": len(ds.train),
            "n_eval": len(ds.eval), "n_pool": len(ds.pool), "n_rejected": len(ds.rejected)}
    if cfg.noise_rate > 0:
        noisy, flipped = inject_noise(ds.train["label"].to_numpy(), cfg.noise_rate,
                                      kind=cfg.noise_kind, seed=cfg.seed, classes=ds.classes)
        ds.train = ds.train.assign(true_label=ds.train["label"], label=noisy,
                                   flipped=flipped.astype(bool))
        info.update(noise_rate=cfg.noise_rate, noise_kind=cfg.noise_kind,
                    n_flipped=int(np.sum(flipped)))
        log.info("dataset: flipped %d of %d training labels (%s noise) on purpose",
                 int(np.sum(flipped)), len(ds.train), cfg.noise_kind)
    for artifact, table in write_split_tables(ds).items():
        store.write_table(artifact, table)
    store.mark_done(STAGE, info)
    log.info("dataset: %d train, %d eval, %d pool, %d rejected rows; classes %s",
             info["n_train"], info["n_eval"], info["n_pool"], info["n_rejected"], ds.classes)
    return info
