"""``relabeler simulate --undercover SPEC``: hold a sub-population out of the training data and
see whether coverage acquisition finds it again.

With random splits the under-covered eval samples are mostly hard or ambiguous ones, not regions
the training data lacks, so no pool sample helps them. A thin spot is made on purpose instead:
after ``data`` and before ``train``, all but ``keep`` of the group's training rows move to the
unlabeled pool (label hidden, truth kept in ``true_label`` as for any simulated pool row); its
eval rows stay. The group is ``COLUMN=VALUE[,VALUE...]`` (a column ``relabeler data`` kept from
the source, or ``label``; values may contain ``:``) or ``cluster:K`` (k-means into K groups of
the frozen encoder's states; the seed chooses among the groups a model trained without them
misclassifies most). Every split gains a boolean ``undercover`` column.

After ``score``, :func:`subgroup_result` measures the k pool samples ``scores/acquire.parquet``
proposes against k random pool samples: the share of each that belongs to the group and the
group's eval accuracy after labeling them with their true labels and refitting the head.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.data import read_split
from relabeler.data.tables import split_table
from relabeler.errors import ConfigError
from relabeler.store import RunStore

log = logging.getLogger(__name__)

STAGE = "simulate.undercover"
FLAG = "--undercover"
KEEP_FLAG = "--undercover-keep"
RANDOM_SEEDS = 3


@dataclass(frozen=True)
class UndercoverSpec:
    """The group to hold out: rows whose ``column`` is one of ``values``, or (``clusters`` > 0)
    one of ``clusters`` text clusters; ``keep`` of its training rows stay in train."""

    spec: str
    column: str | None = None
    values: tuple[str, ...] = ()
    clusters: int = 0
    keep: float = 0.1


def parse_undercover(spec: str, *, keep: float = 0.1) -> UndercoverSpec:
    """``COLUMN=VALUE[,VALUE...]`` or ``cluster:K``; ConfigError naming the flag otherwise."""
    if not 0 <= keep < 1:
        raise ConfigError(f"{KEEP_FLAG}: expected a share in [0, 1), got {keep}")
    if spec.startswith("cluster:"):
        k_text = spec[len("cluster:"):]
        try:
            k = int(k_text)
        except ValueError:
            raise ConfigError(f"{FLAG}: cluster:K needs an integer K >= 2, got {k_text!r}") \
                from None
        if k < 2:
            raise ConfigError(f"{FLAG}: cluster:K needs K >= 2, got {k}")
        return UndercoverSpec(spec=spec, clusters=k, keep=keep)
    column, sep, values_text = spec.partition("=")
    values = tuple(v.strip() for v in values_text.split(",") if v.strip())
    if not (sep and column.strip() and values):
        raise ConfigError(f"{FLAG}: expected COLUMN=VALUE[,VALUE...] or cluster:K, got {spec!r}")
    return UndercoverSpec(spec=spec, column=column.strip(), values=values, keep=keep)


def check_held(store: RunStore, spec: UndercoverSpec | None) -> bool:
    """Whether ``spec`` is still to be applied to an existing run (so the stages after ``data``
    must run again). Raises when the run holds another group out than ``spec``."""
    info = (store.stage_info(STAGE) or {}).get("info") if store.stage_done(STAGE) else None
    wanted = None if spec is None else {"spec": spec.spec, "keep": spec.keep}
    held = None if info is None else {k: info[k] for k in ("spec", "keep")}
    if held is not None and held != wanted:
        raise ConfigError(f"{FLAG}: the run in {store.uri} was made with --undercover "
                          f"{held['spec']} --undercover-keep {held['keep']}; use --force or "
                          f"another --out")
    return spec is not None and held is None


def check_clusters(spec: UndercoverSpec, n_texts: int) -> None:
    """ConfigError unless 2 <= K <= half the texts for ``cluster:K``."""
    if not 2 <= spec.clusters <= n_texts // 2:
        raise ConfigError(f"{FLAG}: cluster:K needs 2 <= K <= {n_texts // 2} (half the "
                          f"{n_texts} texts), got {spec.clusters}")


def text_clusters(texts: list[str], k: int, *, seed: int,
                  embeddings: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cluster of each text and the space it was found in: k-means (k clusters) on the
    L2-normalised ``embeddings`` (the frozen encoder's states, so a group is a semantic region
    of the space the classifier sees), or without them on the LSA (100 components) of sublinear
    TF-IDF. Returns ((N,) int64 in [0, k), (N, d) float)."""
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import normalize

    if embeddings is not None:
        space = normalize(np.asarray(embeddings, dtype=np.float64))
    else:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2,
                                max_features=50_000).fit_transform(texts)
        components = min(100, tfidf.shape[1] - 1, len(texts) - 1)
        space = (normalize(TruncatedSVD(components, random_state=seed).fit_transform(tfidf))
                 if components >= 2 else tfidf.toarray())
    return KMeans(k, n_init=4, random_state=seed).fit_predict(space).astype(np.int64), space


def held_out_errors(space: np.ndarray, labels: np.ndarray, cluster: np.ndarray,
                    is_train: np.ndarray, is_eval: np.ndarray,
                    candidates: np.ndarray) -> np.ndarray:
    """Error rate on each candidate cluster's eval rows of a linear probe (logistic regression
    on ``space``) fitted on the training rows outside the cluster: how much the thin spot would
    hurt if the training data lacked it. A cluster the model classifies perfectly without its
    own rows measures nothing. Returns (len(candidates),) float in [0, 1]."""
    from sklearn.linear_model import LogisticRegression

    errors = np.zeros(len(candidates))
    for i, c in enumerate(candidates):
        fit_rows = is_train & (cluster != c)
        test_rows = is_eval & (cluster == c)
        if len(np.unique(labels[fit_rows])) < 2:
            errors[i] = 1.0
            continue
        probe = LogisticRegression(max_iter=500).fit(space[fit_rows], labels[fit_rows])
        errors[i] = float(np.mean(probe.predict(space[test_rows]) != labels[test_rows]))
    return errors


def _column_member(frame: pd.DataFrame, spec: UndercoverSpec) -> np.ndarray:
    # the group is the truth's: a label spec follows the true label where noise was injected
    column = "true_label" if spec.column == "label" and "true_label" in frame else spec.column
    values = frame[column].map(lambda v: None if v is None or v != v else str(v))
    return values.isin(set(spec.values)).to_numpy(dtype=bool)


def _truth(frame: pd.DataFrame) -> np.ndarray:
    """The true label of every row (``true_label`` where the label is noisy or hidden)."""
    if "true_label" in frame.columns:
        return frame["true_label"].fillna(frame["label"]).astype(str).to_numpy()
    return frame["label"].astype(str).to_numpy()


def _common_values(frame: pd.DataFrame, spec: UndercoverSpec, *, shown: int = 8) -> str:
    """The column's most common values in ``frame`` (values match exactly, case included), for
    the error of a spec that matched none; "" for a cluster spec."""
    if spec.column is None or spec.column not in frame.columns:
        return ""
    counts = frame[spec.column].astype(str).value_counts()
    values = ", ".join(f"{value!r} ({count})" for value, count in counts.head(shown).items())
    more = f" and {len(counts) - shown} more" if len(counts) > shown else ""
    return (f"; values match exactly, case included: {spec.column}'s most common are "
            f"{values}{more}")


def group_members(splits: dict[str, pd.DataFrame], spec: UndercoverSpec, *,
                  seed: int, embeddings: np.ndarray | None = None,
                  ) -> tuple[dict[str, np.ndarray], dict]:
    """Membership of every row of ``splits`` (train, eval, pool frames) in the group, and what
    chose it. ``cluster:K`` clusters ``embeddings`` (one row per text of train, eval and pool
    in that order; TF-IDF without them) and lets the seed choose among the clusters a model
    trained without them misclassifies most (:func:`held_out_errors`, the upper half): the
    realistic thin spot is one that hurts. Raises ConfigError naming the flag for a column
    that does not exist, a K out of range, or a group with no training or eval row, or with
    every training row."""
    train, evaluation = splits["train"], splits["eval"]
    info: dict = {}
    if spec.column is not None:
        if spec.column not in train.columns or spec.column not in evaluation.columns:
            usable = [c for c in train.columns if c not in (
                "id", "text", "true_label", "flipped", "shortcut", "undercover")]
            raise ConfigError(f"{FLAG}: the dataset has no column {spec.column!r} (columns: "
                              f"{', '.join(usable)}; `relabeler data` keeps the source's "
                              f"columns, rerun it with --force if the run predates that)")
        member = {name: (_column_member(frame, spec) if spec.column in frame.columns
                         else np.zeros(len(frame), dtype=bool))
                  for name, frame in splits.items()}
    else:
        texts = [t for frame in splits.values() for t in frame["text"].tolist()]
        check_clusters(spec, len(texts))
        cluster, space = text_clusters(texts, spec.clusters, seed=seed, embeddings=embeddings)
        bounds = np.cumsum([0] + [len(f) for f in splits.values()])
        by_split = {name: cluster[bounds[i]:bounds[i + 1]] for i, name in enumerate(splits)}
        sizes = np.bincount(cluster, minlength=spec.clusters)
        in_train = np.bincount(by_split["train"], minlength=spec.clusters)
        in_eval = np.bincount(by_split["eval"], minlength=spec.clusters)
        usable = np.flatnonzero((in_train > 1) & (in_eval > 0) & (in_train < len(train)))
        # a cluster of more than twice the mean size is more of the corpus than a thin spot;
        # one of fewer than 5 eval rows measures little
        small = usable[(sizes[usable] <= 2 * len(texts) / spec.clusters)
                       & (in_eval[usable] >= 5)]
        candidates = small if len(small) else usable
        if not len(candidates):
            raise ConfigError(f"{FLAG}: no cluster of cluster:{spec.clusters} has both "
                              f"training and eval rows; use another K")
        part = np.repeat(list(splits), [len(f) for f in splits.values()])
        labels = np.concatenate([_truth(f) for f in splits.values()])
        errors = held_out_errors(space, labels, cluster, part == "train", part == "eval",
                                 candidates)
        # the upper half by error, and never a cluster classified perfectly without its rows
        # while another is not
        hurting = (errors >= np.median(errors)) & ((errors > 0) | (errors.max() == 0))
        hurting = candidates[hurting]
        chosen = int(np.random.default_rng(seed).choice(hurting))
        member = {name: c == chosen for name, c in by_split.items()}
        info = {"cluster": chosen, "cluster_sizes": sizes.tolist(),
                "clustered_on": "encoder" if embeddings is not None else "tfidf",
                "held_out_error": {str(int(c)): round(float(e), 4)
                                   for c, e in zip(candidates, errors, strict=True)}}
    n_train, n_eval = int(member["train"].sum()), int(member["eval"].sum())
    if not n_train or not n_eval:
        where = "training" if not n_train else "eval"
        raise ConfigError(f"{FLAG}: {spec.spec!r} matches no {where} row"
                          + _common_values(splits["train" if not n_train else "eval"], spec))
    if n_train == len(train):
        raise ConfigError(f"{FLAG}: {spec.spec!r} matches every training row")
    return member, info


def move_group(splits: dict[str, pd.DataFrame], member: dict[str, np.ndarray], *,
               keep: float, seed: int) -> tuple[dict[str, pd.DataFrame], dict]:
    """The splits after all but ``floor(keep x n)`` of the group's n training rows (a seeded
    choice) moved to the end of the pool, label hidden (``true_label`` keeps the truth), each
    split with its ``undercover`` column. Returns the new frames and the counts."""
    train = splits["train"]
    rng = np.random.default_rng(seed + 7)
    group_rows = np.flatnonzero(member["train"])
    n_keep = int(np.floor(keep * len(group_rows)))
    kept = np.sort(rng.choice(group_rows, size=n_keep, replace=False))
    moved = np.setdiff1d(group_rows, kept)
    moving = train.iloc[moved].copy()
    # a pool row's label is hidden; the truth stays beside it for the oracle
    moving["true_label"] = moving["true_label"] if "true_label" in moving else moving["label"]
    moving["label"] = None
    moving = moving.drop(columns=[c for c in ("flipped", "shortcut") if c in moving])
    moving["undercover"] = True
    stay = np.ones(len(train), dtype=bool)
    stay[moved] = False
    new = {"train": train[stay].assign(undercover=member["train"][stay]),
           "eval": splits["eval"].assign(undercover=member["eval"]),
           "pool": pd.concat([splits["pool"].assign(undercover=member["pool"]), moving],
                             ignore_index=True)}
    new = {name: frame.reset_index(drop=True) for name, frame in new.items()}
    counts = {"n_group_train": int(len(group_rows)), "n_kept": n_keep, "n_moved": int(len(moved)),
              "n_group_eval": int(member["eval"].sum()),
              "n_group_pool": int(new["pool"]["undercover"].sum()), "n_pool": int(len(new["pool"]))}
    return new, counts


def check_classes_left(splits: dict[str, pd.DataFrame], spec: UndercoverSpec,
                       counts: dict) -> None:
    """ConfigError naming the flags when the training rows left after the hold-out (``splits``
    as :func:`move_group` returns them) hold no row whose true label is a class the eval split
    has: the model could not learn that class (flipped rows given its label do not teach it),
    and the measures would read its eval rows against a class training never saw."""
    missing = sorted(set(_truth(splits["eval"])) - set(_truth(splits["train"])))
    if missing:
        raise ConfigError(
            f"{FLAG} {spec.spec} with {KEEP_FLAG} {spec.keep:g}: the training rows left hold no "
            f"row of the class {', '.join(map(repr, missing))} (by true label), which the eval "
            f"split has ({counts['n_kept']} of the group's {counts['n_group_train']} training "
            f"rows kept); use a larger {KEEP_FLAG} or a group that leaves every class some "
            f"training rows")


def encoder_embeddings(config, texts: list[str], classes: list[str], *,
                       progress: bool = False) -> np.ndarray:
    """The frozen encoder's states of ``texts`` (the ones head mode trains on, through the
    encoder cache, so ``train`` reuses them): the space ``cluster:K`` groups in."""
    from relabeler.jobs.head_states import encoder_states
    from relabeler.model import load_classifier, pick_device

    device = pick_device()
    model = load_classifier(config.model.name, classes, pooling=config.model.pooling,
                            pool_layers=config.model.pool_layers).to(device)
    states = encoder_states(config, model, texts, device, progress=progress)
    return states.float().cpu().numpy()


def hold_out(store: RunStore, spec: UndercoverSpec, *, seed: int, force: bool = False,
             config=None) -> dict:
    """Move all but ``keep`` of the group's training rows into ``dataset/pool.parquet`` once (a
    finished hold-out is kept unless ``force``, which goes with a rewritten dataset) and mark
    the group in every split's ``undercover`` column. ``cluster:K`` clusters the encoder's
    states of ``config``'s model (TF-IDF without a ``config``). A hold-out that leaves training
    without a class is refused (:func:`check_classes_left`). Returns the hold-out's info."""
    if store.stage_done(STAGE) and not force:
        return (store.stage_info(STAGE) or {}).get("info", {})
    splits = {name: read_split(store.read_table(artifacts.SPLIT(split=name)))
              for name in ("train", "eval", "pool")}
    embeddings = None
    if spec.clusters and config is not None:
        texts = [t for frame in splits.values() for t in frame["text"].tolist()]
        check_clusters(spec, len(texts))  # before the encoding, not after
        classes = sorted(set(splits["train"]["label"].dropna().astype(str)))
        embeddings = encoder_embeddings(config, texts, classes)
    member, chosen = group_members(splits, spec, seed=seed, embeddings=embeddings)
    new, counts = move_group(splits, member, keep=spec.keep, seed=seed)
    check_classes_left(new, spec, counts)
    for name, frame in new.items():
        store.write_table(artifacts.SPLIT(split=name), split_table(frame, name))
    info = {"spec": spec.spec, "keep": spec.keep, **counts, **chosen}
    store.mark_done(STAGE, info)
    log.info("simulate: %s: moved %d of %d group training rows to the pool (%d kept); "
             "%d group eval rows", spec.spec, counts["n_moved"], counts["n_group_train"],
             counts["n_kept"], counts["n_group_eval"])
    return info


def subgroup_measure(refit, *, train_rows: np.ndarray, train_labels: np.ndarray,
                     pool_rows: np.ndarray,
                     pool_truth: np.ndarray, in_group_pool: np.ndarray,
                     group_eval_rows: np.ndarray, group_eval_truth: np.ndarray,
                     picks: np.ndarray, seed: int) -> dict:
    """Share of ``picks`` (pool positions) in the group against random picks of the same size
    (mean of :data:`RANDOM_SEEDS` draws), and the group's eval accuracy after the refitter
    trains on the training samples (``train_labels``) plus the picks with their true labels.

    ``train_rows``, ``pool_rows``, ``group_eval_rows``: the refitter's rows of the training
    samples, of the pool and of the group's eval samples."""

    def accuracy(extra: np.ndarray) -> float:
        rows = np.concatenate([train_rows, pool_rows[extra]])
        labels = np.concatenate([train_labels, pool_truth[extra]])
        probs = refit.fit_predict(rows, labels, group_eval_rows)
        return float(np.mean(probs.argmax(axis=1) == group_eval_truth))

    k = len(picks)
    draws = [np.random.default_rng(seed + 3000 + r).choice(len(pool_rows), size=k,
                                                           replace=False)
             for r in range(RANDOM_SEEDS)]
    return {"k": int(k),
            # no picks (score.acquire_budget 0): no share to measure
            "precision_selected": float(in_group_pool[picks].mean()) if k else None,
            "precision_random": float(np.mean([in_group_pool[d].mean() for d in draws]))
            if k else None,
            "accuracy": {"before": accuracy(np.zeros(0, dtype=np.int64)),
                         "selected": accuracy(picks),
                         "random": float(np.mean([accuracy(d) for d in draws]))}}


def _frames(store: RunStore, view) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """train (in ``view`` order), eval and pool as the refitters of simulate index them."""
    train = read_split(store.read_table(artifacts.TRAIN.path)).set_index("id").loc[view.ids]
    return (train, read_split(store.read_table(artifacts.EVAL.path)),
            read_split(store.read_table(artifacts.POOL.path)))


def existing_coverage(store: RunStore, config, view, *, progress: bool) -> dict | None:
    """simulate's coverage measure (:func:`relabeler.jobs.simulate.coverage_experiment`, the
    one ``--budgets`` runs) for ``--budgets none``; None without a labeled, extracted pool."""
    from relabeler.jobs.simulate import _refitter

    train, evaluation, pool = _frames(store, view)
    if not has_labeled_pool(store, pool):
        return None
    texts = train["text"].tolist() + evaluation["text"].tolist() + pool["text"].tolist()
    refit = _refitter(store, config, texts, view.classes, progress)
    return coverage_measure(store, config, view, refit, (train, evaluation, pool))


def has_labeled_pool(store: RunStore, pool: pd.DataFrame) -> bool:
    """A simulation's pool with its true labels kept and its features extracted."""
    return bool(len(pool) and "true_label" in pool.columns and store.stage_done("extract.pool"))


def coverage_measure(store: RunStore, config, view, refit,
                     frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> dict:
    """:func:`relabeler.jobs.simulate.coverage_experiment` on the run's coverage scores with
    ``refit`` (a refitter over train, eval and pool texts in ``frames`` order)."""
    from relabeler.jobs.score import load_split
    from relabeler.jobs.simulate import class_ids, coverage_experiment, true_labels

    train, evaluation, pool = frames
    classes = view.classes
    n, n_eval = len(train), len(evaluation)
    eval_view = load_split(store, "eval", classes)
    pool_view = load_split(store, "pool", classes)
    cov = store.read_table(artifacts.COVERAGE.path).to_pandas()
    eval_cov = cov[cov["split"] == "eval"].set_index("id")["coverage_score"].reindex(
        eval_view.ids).to_numpy(dtype=np.float64)
    pool_pos = pd.Series(np.arange(len(pool)), index=pool["id"]).reindex(pool_view.ids)
    eval_pos = pd.Series(np.arange(n_eval), index=evaluation["id"]).reindex(eval_view.ids)
    eval_pos = eval_pos.to_numpy(dtype=np.int64)
    # the eval truth (eval_view.labels are the flipped labels under --eval-noise)
    eval_truth = class_ids(true_labels(evaluation), classes, what="the eval split")[eval_pos]
    return coverage_experiment(
        refit, noisy=view.labels, pool_rows=n + n_eval + pool_pos.to_numpy(dtype=np.int64),
        pool_truth=class_ids(pool.set_index("id").loc[pool_view.ids, "true_label"], classes,
                             what="the pool's true_label"),
        pool_features=pool_view.features, eval_rows=n + eval_pos,
        eval_labels=eval_truth, eval_features=eval_view.features, eval_coverage=eval_cov,
        k=config.score.acquire_budget, classes=classes, seed=config.data.seed)


def measured_rows(evaluation: pd.DataFrame, score_config, spec: str) -> np.ndarray:
    """(len(evaluation),) bool: the group's eval rows that measure the picks. With
    ``acquire_targets = "eval"`` the rows that steered acquisition
    (:func:`relabeler.selectors.eval_support.steering`) are left out: the picks were chosen to
    fix them, so they would flatter the picks."""
    from relabeler.selectors.eval_support import steering

    rows = evaluation["undercover"].to_numpy(dtype=bool, copy=True)
    if score_config.acquire_targets == "eval":
        rows &= ~steering(evaluation["id"].to_numpy(dtype=object),
                          score_config.acquire_eval_share)
    if not rows.any():
        group = int(evaluation["undercover"].sum())
        raise ConfigError(f"{FLAG} {spec}: none of the group's {group} eval rows is left to "
                          "measure the picks: score.acquire_eval_share="
                          f"{score_config.acquire_eval_share} lets the rest steer acquisition "
                          "(use a lower share or a larger group)")
    return rows


def subgroup_result(store: RunStore, config, view, spec: UndercoverSpec, *,
                    progress: bool) -> dict:
    """The ``"subgroup"`` block of ``simulation.json``: the first k pool samples of
    ``scores/acquire.parquet`` against k random pool samples (mean of
    :data:`RANDOM_SEEDS` draws), by the share of them in the group and by the group's eval
    accuracy after the head is refit on train plus them, labeled with their true labels
    (``before``: refit on train alone), on the group's eval rows that did not steer
    acquisition (:func:`measured_rows`). ``view`` is the training view score used."""
    from relabeler.jobs.simulate import _refitter, class_ids, true_labels

    classes = view.classes
    train, evaluation, pool = _frames(store, view)
    acquired = store.read_table(artifacts.ACQUIRE.path).to_pandas().sort_values("rank")
    picks = pd.Series(np.arange(len(pool)), index=pool["id"]).reindex(
        acquired["id"]).to_numpy(dtype=np.int64)
    texts = train["text"].tolist() + evaluation["text"].tolist() + pool["text"].tolist()
    refit = _refitter(store, config, texts, classes, progress)
    n, n_eval = len(train), len(evaluation)
    in_group_pool = pool["undercover"].to_numpy(dtype=bool)
    group_eval = np.flatnonzero(measured_rows(evaluation, config.score, spec.spec))
    eval_truth = class_ids(true_labels(evaluation), classes, what="the eval split")[group_eval]
    pool_truth = class_ids(pool["true_label"], classes, what="the pool's true_label")

    measure = subgroup_measure(
        refit, train_rows=np.arange(n), train_labels=view.labels,
        pool_rows=n + n_eval + np.arange(len(pool)),
        pool_truth=pool_truth, in_group_pool=in_group_pool, group_eval_rows=n + group_eval,
        group_eval_truth=eval_truth, picks=picks, seed=config.data.seed)
    result = {"spec": spec.spec, **measure,
              "n_group_eval": int(evaluation["undercover"].sum()),
              "n_group_eval_measured": int(len(group_eval)),
              "n_group_pool": int(in_group_pool.sum()),
              "n_pool": int(len(pool)),
              "group_share_pool": float(in_group_pool.mean()) if len(pool) else 0.0}
    log.info("simulate: %s: picks in the group %s (random %s); group eval accuracy before "
             "%.3f, selected %.3f, random %.3f", spec.spec, result["precision_selected"],
             result["precision_random"], result["accuracy"]["before"],
             result["accuracy"]["selected"], result["accuracy"]["random"])
    return result
