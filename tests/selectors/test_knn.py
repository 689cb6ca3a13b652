"""Tests for relabeler.selectors.knn and knn_torch: every engine exact against a float64 brute
force (faiss through ``knn``, the torch search the CUDA path runs, here on CPU tensors, and the
bf16 self-join), plus the cross-cutting checks: row order, batch = one at a time, sharded =
unsharded, ties tolerated, CPU = GPU path."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from relabeler.selectors import knn as knn_module
from relabeler.selectors import knn_torch
from relabeler.selectors.knn import METRICS, Neighbors, check_inputs, knn, merge_topk

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
ATOL = {"cosine": 1e-5, "ip": 1e-4, "l2": 1e-3}
# 80 x 80 score blocks: the database is split in chunks and the CPU selection mostly takes
# its sparse route (the entries that beat their row's running k-th best)
SMALL_BLOCKS = 80 * 80


def random_features(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def clustered_features(n: int, dim: int = 16, n_clusters: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, dim)) * 5
    return (centers[rng.integers(0, n_clusters, n)]
            + rng.standard_normal((n, dim))).astype(np.float32)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The blocks here are tiny: one torch thread skips the cost of parallel regions (which
    stall whenever another process holds a core). Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def unit_rows(x: np.ndarray, metric: str) -> np.ndarray:
    if metric != "cosine":
        return x
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1)).astype(np.float32)


def torch_search(database, queries=None, *, k, metric, query_rows=None,
                 block_elements=SMALL_BLOCKS) -> Neighbors:
    """The CUDA engine's code on CPU tensors, called as ``knn`` calls it."""
    self_rows = np.arange(len(database)) if queries is None else query_rows
    indices, scores = knn_torch.exact_search(
        unit_rows(database, metric), None if queries is None else unit_rows(queries, metric),
        k=k, metric=metric, self_rows=self_rows, device="cpu", block_elements=block_elements)
    return Neighbors(indices=indices, scores=scores, metric=metric)


def bf16_search(database, queries=None, *, k, metric, query_rows=None,
                block_elements=SMALL_BLOCKS) -> Neighbors:
    assert queries is None and query_rows is None, "the bf16 engine is a self-join only"
    indices, scores = knn_torch.bf16_self_join(unit_rows(database, metric), k=k,
                                               block_elements=block_elements)
    return Neighbors(indices=indices, scores=scores, metric=metric)


def faiss_search(database, queries=None, *, k, metric, query_rows=None) -> Neighbors:
    """knn on CPU; the small inputs here take its faiss engine."""
    return knn(database, queries, k=k, metric=metric, query_rows=query_rows, device="cpu")


ENGINES = {"faiss": faiss_search, "torch": torch_search}


def reference_scores(database: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """(Q, N) float64 scores, higher = closer (negated squared distance under l2)."""
    db, q = database.astype(np.float64), queries.astype(np.float64)
    if metric == "cosine":
        db = db / np.where((n := np.linalg.norm(db, axis=1, keepdims=True)) > 0, n, 1)
        q = q / np.where((n := np.linalg.norm(q, axis=1, keepdims=True)) > 0, n, 1)
    if metric == "l2":
        return -((q[:, None, :] - db[None, :, :]) ** 2).sum(-1)
    return q @ db.T


def brute_force(database, queries=None, *, k, metric, exclude_rows=None):
    """Indices (Q, k + 1) and scores (Q, k + 1) in the metric's convention, padded like knn."""
    scores = reference_scores(database, database if queries is None else queries, metric)
    if exclude_rows is not None:
        # negative: the query is no database row, nothing to exclude
        own = np.flatnonzero(np.asarray(exclude_rows) >= 0)
        scores[own, np.asarray(exclude_rows)[own]] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k + 1]
    top = np.take_along_axis(scores, order, axis=1)
    order = np.where(np.isneginf(top), -1, order)
    if order.shape[1] < k + 1:
        pad = k + 1 - order.shape[1]
        order = np.pad(order, ((0, 0), (0, pad)), constant_values=-1)
        top = np.pad(top, ((0, 0), (0, pad)), constant_values=-np.inf)
    return order, (-top if metric == "l2" else top)


def assert_matches(result: Neighbors, database, queries=None, *, k, metric, exclude_rows=None):
    """Scores equal the reference at every rank; indices equal it wherever the score is unique
    in its row; every returned score is the true score of its returned index."""
    ref_idx, ref_scores = brute_force(database, queries, k=k, metric=metric,
                                      exclude_rows=exclude_rows)
    atol = ATOL[metric]
    assert result.indices.shape == result.scores.shape == (len(ref_idx), k)
    assert result.indices.dtype == np.int64 and result.scores.dtype == np.float32
    np.testing.assert_allclose(result.scores, ref_scores[:, :k], atol=atol, rtol=1e-5)
    gaps = np.abs(ref_scores[:, :k, None] - ref_scores[:, None, :])
    gaps[:, np.arange(k), np.arange(k)] = np.inf
    unique = (gaps > 10 * atol).all(axis=2)
    np.testing.assert_array_equal(result.indices[unique], ref_idx[:, :k][unique])
    full = reference_scores(database, database if queries is None else queries, metric)
    valid = result.indices >= 0
    rows = np.nonzero(valid)[0]
    true = full[rows, result.indices[valid]]
    np.testing.assert_allclose(result.scores[valid], -true if metric == "l2" else true,
                               atol=atol, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# exactness


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("engine", ENGINES)
def test_self_join_matches_brute_force(engine, metric):
    db = np.repeat(random_features(250), [1, 2] * 125, axis=0)   # ties, too
    result = ENGINES[engine](db, k=10, metric=metric)
    assert result.metric == metric
    assert_matches(result, db, k=10, metric=metric, exclude_rows=np.arange(len(db)))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("engine", ENGINES)
def test_explicit_queries_match_brute_force(engine, metric):
    db, queries = random_features(300), random_features(150, seed=1)
    result = ENGINES[engine](db, queries, k=7, metric=metric)
    assert_matches(result, db, queries, k=7, metric=metric)


@pytest.mark.parametrize("engine", ENGINES)
def test_scores_sorted_best_first(engine):
    db = random_features(200)
    assert (np.diff(ENGINES[engine](db, k=12, metric="cosine").scores, axis=1) <= 0).all()
    assert (np.diff(ENGINES[engine](db, k=12, metric="l2").scores, axis=1) >= 0).all()


def test_torch_path_with_default_blocks_equals_faiss():
    """CPU = GPU path at the block size the CUDA engine would use, on 3000 rows."""
    db, queries = random_features(3000, dim=32), random_features(200, dim=32, seed=1)
    for metric in METRICS:
        for q in (None, queries):
            ours = torch_search(db, q, k=10, metric=metric, block_elements=None)
            reference = faiss_search(db, q, k=10, metric=metric)
            np.testing.assert_allclose(ours.scores, reference.scores, atol=ATOL[metric],
                                       rtol=1e-5)
            assert (ours.indices == reference.indices).mean() > 0.99


@pytest.mark.parametrize("metric", ["cosine", "ip"])
@pytest.mark.parametrize("extra", [knn_torch.CANDIDATE_EXTRA, 1])
def test_bf16_self_join_is_exact(caplog, metric, extra):
    """The bf16 scan with an fp32 re-score: certified rows equal brute force, and rows the
    bound cannot certify (many with a single extra candidate, and among duplicated rows) are
    searched again in fp32, so the whole result is exact."""
    db = np.concatenate([clustered_features(600, dim=32), random_features(100, dim=32)[:50]
                         .repeat(2, axis=0)])                        # 50 duplicated pairs
    with caplog.at_level(logging.DEBUG, logger="relabeler.selectors.knn_torch"):
        indices, scores = knn_torch.bf16_self_join(unit_rows(db, metric), k=6, extra=extra,
                                                   block_elements=96 * 96)
    found = Neighbors(indices=indices, scores=scores, metric=metric)
    assert_matches(found, db, k=6, metric=metric, exclude_rows=np.arange(len(db)))
    redone = [r.args[2] for r in caplog.records if "bf16 self-join" in r.getMessage()]
    assert len(redone) == 1 and redone[0] < len(db)
    if extra == 1:
        assert redone[0] > 0                   # the fp32 fallback ran, and the result is exact


def test_bf16_pays_only_where_rows_certify():
    """Random rows certify; rows packed so tightly that bf16 rounding hides their order (as
    fine-tuned features are) do not, and knn then takes faiss, exactly."""
    spread = unit_rows(random_features(2000, dim=64), "cosine")
    assert knn_torch.bf16_pays(spread, k=4)
    tight = (np.repeat(random_features(10, dim=64) * 5, 200, axis=0)
             + random_features(2000, dim=64, seed=1) * 1e-3)
    assert not knn_torch.bf16_pays(unit_rows(tight, "cosine"), k=4)


@pytest.mark.skipif(not knn_torch.cpu_has_bf16_dot(), reason="needs bf16 dot products")
def test_knn_takes_the_bf16_engine_for_a_large_self_join(caplog):
    db = random_features(4096, dim=128)
    with caplog.at_level(logging.DEBUG, logger="relabeler.selectors.knn"):
        found = knn(db, k=10, device="cpu")
    assert any("bf16-self-join engine" in r.getMessage() for r in caplog.records)
    reference = torch_search(db, k=10, metric="cosine", block_elements=None)
    np.testing.assert_allclose(found.scores, reference.scores, atol=ATOL["cosine"], rtol=1e-5)
    assert (found.indices == reference.indices).mean() > 0.999
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="relabeler.selectors.knn"):
        knn(db, k=10, metric="l2", device="cpu")                    # l2: faiss
        knn(db, db[:10], k=10, device="cpu")                        # explicit queries: faiss
    assert sum("faiss-cpu engine" in r.getMessage() for r in caplog.records) == 2


# ---------------------------------------------------------------------------------------------
# self-exclusion and ties


@pytest.mark.parametrize("engine", [*ENGINES, "bf16"])
def test_no_row_is_its_own_neighbour(engine):
    db = random_features(250)
    search = {**ENGINES, "bf16": bf16_search}[engine]
    for metric in METRICS if engine != "bf16" else ("cosine", "ip"):
        result = search(db, k=15, metric=metric)
        assert not (result.indices == np.arange(250)[:, None]).any()
        assert (result.indices >= 0).all()


@pytest.mark.parametrize("engine", ENGINES)
def test_exact_duplicate_is_the_top_neighbour(engine):
    db = random_features(200)
    db[17] = db[5]
    result = ENGINES[engine](db, k=5, metric="cosine")
    assert result.indices[5, 0] == 17 and result.indices[17, 0] == 5
    np.testing.assert_allclose(result.scores[[5, 17], 0], 1.0, atol=1e-6)
    l2 = ENGINES[engine](db, k=5, metric="l2")
    assert l2.indices[5, 0] == 17 and l2.scores[5, 0] < 1e-3


def test_database_as_explicit_queries_finds_each_row_itself():
    db = random_features(100)
    result = knn(db, db, k=3)
    np.testing.assert_array_equal(result.indices[:, 0], np.arange(100))
    np.testing.assert_allclose(result.scores[:, 0], 1.0, atol=1e-6)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("engine", ENGINES)
def test_ties_tolerated(engine, metric):
    """40 distinct rows, each 6 times: every row has 5 exact ties for first place."""
    db = np.repeat(random_features(40), 6, axis=0)
    result = ENGINES[engine](db, k=8, metric=metric)
    assert_matches(result, db, k=8, metric=metric, exclude_rows=np.arange(len(db)))
    assert not (result.indices == np.arange(len(db))[:, None]).any()
    # the five copies come first, in any order
    copies = np.arange(len(db))[:, None] // 6 == result.indices[:, :5] // 6
    assert copies.all()


def _scattered_copies(n_texts: int = 40, copies: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``n_texts`` distinct features, each ``copies`` times at scattered rows, and the
    group of each row (exact duplicates, as duplicate texts give)."""
    group = np.random.default_rng(4).permutation(np.repeat(np.arange(n_texts), copies))
    return random_features(n_texts)[group], group


def _copies_first(group: np.ndarray, k: int) -> np.ndarray:
    """Each row's first k neighbours where its copies score best: the other copies, the
    smaller row first (then anything: -2)."""
    out = np.full((len(group), k), -2)
    for row, g in enumerate(group):
        others = [r for r in np.flatnonzero(group == g) if r != row][:k]
        out[row, :len(others)] = others
    return out


def _engines_through_knn(monkeypatch):
    """knn itself with each of its engines: faiss, the bf16 self-join (its size and CPU
    checks passed) and the CUDA engine's torch code on CPU tensors."""
    import relabeler.selectors.knn as knn_module

    def faiss(db, k, metric):
        return knn(db, k=k, metric=metric, device="cpu")

    def bf16(db, k, metric):
        with monkeypatch.context() as m:
            m.setattr(knn_module, "BF16_MIN_SHAPE", (1, 1))
            m.setattr(knn_torch, "cpu_has_bf16_dot", lambda: True)
            m.setattr(knn_torch, "bf16_pays", lambda *a, **kw: True)
            return knn(db, k=k, metric=metric, device="cpu")

    def torch_path(db, k, metric):
        search = knn_torch.exact_search
        with monkeypatch.context() as m:
            m.setattr(torch.cuda, "is_available", lambda: True)
            m.setattr(knn_torch, "exact_search",
                      lambda *a, **kw: search(*a, **{**kw, "device": "cpu",
                                                     "block_elements": SMALL_BLOCKS}))
            return knn(db, k=k, metric=metric, device="cuda")

    return {"faiss": faiss, "bf16": bf16, "torch": torch_path}


@pytest.mark.parametrize("k", [8, 3])
def test_exact_duplicates_come_smaller_row_first_from_every_engine(monkeypatch, caplog, k):
    """Equal scores in row order, and at k = 3 (two more copies tie past the k-th place) the
    smaller copies kept: faiss gave the larger row first, the shard merge the smaller."""
    db, group = _scattered_copies()
    expected = _copies_first(group, k)
    known = expected >= 0
    engines = _engines_through_knn(monkeypatch)
    with caplog.at_level(logging.DEBUG, logger="relabeler.selectors.knn"):
        for name, search in engines.items():
            for metric in METRICS if name != "bf16" else ("cosine", "ip"):
                result = search(db, k, metric)
                np.testing.assert_array_equal(result.indices[known], expected[known],
                                              err_msg=f"{name} {metric}")
                # every equal score in row order, beyond the copies too
                primary = result.scores if metric == "l2" else -result.scores
                order = np.lexsort((result.indices, primary), axis=1)
                np.testing.assert_array_equal(order, np.broadcast_to(np.arange(k), order.shape))
    engines_seen = {r.getMessage().split(" engine")[0].split(": ")[-1] for r in caplog.records
                    if " engine, " in r.getMessage()}
    assert engines_seen == {"faiss-cpu", "bf16-self-join", "torch-cuda"}


@pytest.mark.parametrize("k", [8, 3])
@pytest.mark.parametrize("n_shards", [2, 3])
def test_shards_merged_give_the_unsharded_list_of_exact_duplicates(k, n_shards):
    """As score does it with score.knn_shards: every shard searched with the rows as queries,
    merged by merge_topk; the same ids in the same order as one knn in the driver."""
    db, group = _scattered_copies()
    rows = np.arange(len(db))
    edges = [i * len(db) // n_shards for i in range(n_shards + 1)]
    expected = _copies_first(group, k)
    known = expected >= 0
    for metric in METRICS:
        whole = knn(db, k=k, metric=metric, device="cpu")
        parts = [knn(db[a:b], db, k=k, metric=metric, query_rows=rows - a, device="cpu")
                 for a, b in zip(edges[:-1], edges[1:], strict=True)]
        merged = merge_topk(parts, edges[:-1], k=k)
        np.testing.assert_array_equal(merged.indices, whole.indices, err_msg=metric)
        np.testing.assert_allclose(merged.scores, whole.scores, atol=ATOL[metric])
        np.testing.assert_array_equal(merged.indices[known], expected[known], err_msg=metric)


def test_query_rows_exclude_each_querys_own_row():
    db = random_features(20)
    # query i is database row 10 + i; rows beyond N exclude nothing
    result = knn(db, db[10:14], k=3, query_rows=np.array([10, 11, 12, 99]))
    assert not (result.indices[:3] == np.arange(10, 13)[:, None]).any()
    assert result.indices[3, 0] == 13
    torch_result = torch_search(db, db[10:14], k=3, metric="cosine",
                                query_rows=np.array([10, 11, 12, 99]))
    np.testing.assert_array_equal(torch_result.indices, result.indices)


# ---------------------------------------------------------------------------------------------
# row order, batches, shards


@pytest.mark.parametrize("engine", ENGINES)
def test_row_order_does_not_matter(engine):
    db = random_features(300)
    perm = np.random.default_rng(1).permutation(300)
    plain = ENGINES[engine](db, k=10, metric="cosine")
    shuffled = ENGINES[engine](db[perm], k=10, metric="cosine")
    # row i of the shuffled database is original row perm[i]
    back = np.argsort(perm)
    np.testing.assert_allclose(shuffled.scores[back], plain.scores, atol=1e-6)
    np.testing.assert_array_equal(perm[shuffled.indices[back]], plain.indices)


@pytest.mark.parametrize("engine", ENGINES)
def test_batch_equals_one_at_a_time(engine):
    db, queries = random_features(60, dim=8), random_features(20, dim=8, seed=3)
    for metric in METRICS:
        batch = ENGINES[engine](db, queries, k=6, metric=metric)
        for i in range(len(queries)):
            alone = ENGINES[engine](db, queries[i:i + 1], k=6, metric=metric)
            np.testing.assert_allclose(alone.scores[0], batch.scores[i], atol=ATOL[metric])
            np.testing.assert_array_equal(alone.indices[0], batch.indices[i])


def test_torch_block_size_does_not_change_the_result():
    db = random_features(60, dim=8)
    for metric in METRICS:
        big = torch_search(db, k=6, metric=metric, block_elements=None)
        tiny = torch_search(db, k=6, metric=metric, block_elements=1)
        np.testing.assert_allclose(tiny.scores, big.scores, atol=ATOL[metric])
        np.testing.assert_array_equal(tiny.indices, big.indices)


@pytest.mark.parametrize("n_shards", [1, 3, 7])
def test_shards_merged_equal_one_search(n_shards):
    """As the Ray job searches: each shard with the database rows as queries and their global
    row numbers shifted into the shard, merged by merge_topk."""
    db = random_features(400)
    edges = [i * len(db) // n_shards for i in range(n_shards + 1)]
    rows = np.arange(len(db))
    for metric in METRICS:
        whole = knn(db, k=10, metric=metric)
        parts = [knn(db[a:b], db, k=10, metric=metric, query_rows=rows - a)
                 for a, b in zip(edges[:-1], edges[1:], strict=True)]
        merged = merge_topk(parts, edges[:-1], k=10)
        np.testing.assert_allclose(merged.scores, whole.scores, atol=ATOL[metric])
        assert (merged.indices == whole.indices).mean() > 0.999
        assert not (merged.indices == rows[:, None]).any()


def test_merge_topk_with_offsets():
    db, queries = random_features(250), random_features(20, seed=2)
    edges = [0, 90, 91, 250]
    parts = [knn(db[a:b], queries, k=8, metric="l2")
             for a, b in zip(edges[:-1], edges[1:], strict=True)]
    assert parts[1].indices[:, 1:].max() == -1  # a one-row shard pads
    merged = merge_topk(parts, edges[:-1], k=8)
    whole = knn(db, queries, k=8, metric="l2")
    np.testing.assert_allclose(merged.scores, whole.scores, atol=1e-4)
    np.testing.assert_array_equal(merged.indices, whole.indices)
    assert merged.metric == "l2"


def test_merge_topk_pads_and_checks():
    part = knn(random_features(3, dim=4), random_features(2, dim=4, seed=1), k=2)
    merged = merge_topk([part, part], [0, 3], k=6)
    assert (merged.indices[:, 4:] == -1).all() and np.isneginf(merged.scores[:, 4:]).all()
    with pytest.raises(ValueError, match="offsets"):
        merge_topk([part, part], [0], k=2)
    other = knn(random_features(3, dim=4), random_features(2, dim=4, seed=1), k=2, metric="l2")
    with pytest.raises(ValueError, match="metric"):
        merge_topk([part, other], [0, 3], k=2)


# ---------------------------------------------------------------------------------------------
# edges and bad input


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("engine", ENGINES)
def test_k_at_least_n_pads(engine, metric):
    db = random_features(5, dim=4)
    worst = np.inf if metric == "l2" else -np.inf
    own = ENGINES[engine](db, k=10, metric=metric)
    assert own.indices.shape == (5, 10)
    assert (own.indices[:, :4] >= 0).all() and (own.indices[:, 4:] == -1).all()
    assert (own.scores[:, 4:] == worst).all() and np.isfinite(own.scores[:, :4]).all()
    for i in range(5):
        assert sorted(own.indices[i, :4]) == [j for j in range(5) if j != i]
    other = ENGINES[engine](db, random_features(3, dim=4, seed=1), k=10, metric=metric)
    assert (other.indices[:, :5] >= 0).all() and (other.indices[:, 5:] == -1).all()
    assert (other.scores[:, 5:] == worst).all()


def test_single_row_database_has_no_neighbour():
    result = knn(random_features(1, dim=3), k=2)
    assert (result.indices == -1).all() and np.isneginf(result.scores).all()


@pytest.mark.parametrize("k", [0, -3])
def test_k_below_one_raises(k):
    with pytest.raises(ValueError, match="k must be >= 1"):
        knn(random_features(10), k=k)


def test_k_not_an_int_raises():
    with pytest.raises(TypeError, match="k must be an int"):
        knn(random_features(10), k=2.5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ["database", "queries"])
def test_non_finite_values_raise_naming_argument_and_row(name, bad):
    db, queries = random_features(30), random_features(10, seed=1)
    (db if name == "database" else queries)[7, 3] = bad
    with pytest.raises(ValueError, match=rf"{name} has NaN or inf.*row 7"):
        knn(db, queries, k=3)


def test_float64_overflow_counts_as_non_finite():
    db = random_features(10).astype(np.float64)
    db[4, 0] = 1e300
    with pytest.raises(ValueError, match=r"database has NaN or inf \(converted from float64\)"):
        knn(db, k=2)


def test_dimension_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"queries has shape \(4, 8\).*database has shape "
                                         r"\(30, 16\)"):
        knn(random_features(30), random_features(4, dim=8), k=3)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_non_float_dtype_is_a_type_error(dtype):
    with pytest.raises(TypeError, match="database must hold floats.*" + np.dtype(dtype).name):
        knn(np.ones((10, 4), dtype=dtype), k=2)
    with pytest.raises(TypeError, match="queries must hold floats"):
        knn(random_features(10, dim=4), np.ones((2, 4), dtype=dtype), k=2)


@pytest.mark.parametrize("shape", [(30,), (2, 3, 4), (0, 16), (5, 0)])
def test_wrong_rank_or_empty_database_raises(shape):
    with pytest.raises(ValueError, match=r"database must .*shape \(" + str(shape[0])):
        knn(np.zeros(shape, np.float32), k=2)


def test_empty_queries_give_empty_result():
    result = knn(random_features(10), np.zeros((0, 16), np.float32), k=4)
    assert result.indices.shape == (0, 4) and result.scores.shape == (0, 4)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_other_float_dtypes_are_converted(dtype):
    db = random_features(100)
    result = knn(db.astype(dtype), k=5)
    reference = knn(db.astype(dtype).astype(np.float32), k=5)
    np.testing.assert_array_equal(result.indices, reference.indices)
    assert result.scores.dtype == np.float32


@pytest.mark.parametrize("engine", ENGINES)
def test_zero_vectors_under_cosine_score_zero(engine):
    db = random_features(50)
    db[[3, 20]] = 0
    before = db.copy()
    result = ENGINES[engine](db, k=49, metric="cosine")
    assert np.isfinite(result.scores).all()
    np.testing.assert_allclose(result.scores[3], 0.0, atol=1e-7)
    zero_hits = np.isin(result.indices, [3, 20])
    np.testing.assert_allclose(result.scores[zero_hits], 0.0, atol=1e-7)
    np.testing.assert_array_equal(db, before)  # input untouched


def test_query_rows_are_checked():
    db, queries = random_features(20), random_features(4, seed=1)
    with pytest.raises(ValueError, match=r"query_rows must have shape \(4,\).*\(3,\)"):
        knn(db, queries, k=3, query_rows=np.arange(3))
    with pytest.raises(TypeError, match="query_rows must hold ints"):
        knn(db, queries, k=3, query_rows=np.zeros(4))
    with pytest.raises(ValueError, match="explicit queries"):
        knn(db, k=3, query_rows=np.arange(20))


@pytest.mark.parametrize("option,value", [("metric", "euclid"), ("device", "tpu")])
def test_unknown_options_raise(option, value):
    with pytest.raises(ValueError, match=f"{option} must be one of"):
        knn(random_features(20), k=3, **{option: value})


def test_check_inputs_gives_float32_arrays():
    db, q = check_inputs(random_features(6).astype(np.float64), k=2)
    assert db.dtype == np.float32 and db.flags.c_contiguous and q is db
    with pytest.raises(ValueError, match="metric must be one of"):
        check_inputs(db, k=2, metric="euclid")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_gpu_raises():
    with pytest.raises(ValueError, match="device='cuda'"):
        knn(random_features(20), k=3, device="cuda")


# ---------------------------------------------------------------------------------------------
# GPU


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("metric", METRICS)
def test_torch_cuda_equals_cpu(metric):
    db, queries = random_features(3000, dim=32), random_features(200, dim=32, seed=1)
    for q in (None, queries):
        cuda = knn(db, q, k=10, metric=metric, device="cuda")
        cpu = knn(db, q, k=10, metric=metric, device="cpu")
        np.testing.assert_allclose(cuda.scores, cpu.scores, atol=ATOL[metric], rtol=1e-4)
        assert (cuda.indices == cpu.indices).mean() > 0.99


@pytest.mark.gpu
@gpu
def test_torch_cuda_blocks_and_self_exclusion():
    db = np.repeat(random_features(500, dim=16), 2, axis=0)
    indices, scores = knn_torch.exact_search(unit_rows(db, "cosine"), None, k=5,
                                             metric="cosine", self_rows=np.arange(1000),
                                             device="cuda", block_elements=64 * 64)
    result = Neighbors(indices=indices, scores=scores, metric="cosine")
    assert not (result.indices == np.arange(1000)[:, None]).any()
    assert (result.indices[:, 0] // 2 == np.arange(1000) // 2).all()
    assert_matches(result, db, k=5, metric="cosine", exclude_rows=np.arange(1000))


def test_unit_rows_survive_float32_overflow_and_underflow():
    from relabeler.selectors.knn import unit_rows

    x = np.array([[3e19, 4e19], [3e-23, 4e-23], [3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    unit = unit_rows(x)
    assert unit.dtype == np.float32
    np.testing.assert_allclose(unit[:3], [[0.6, 0.8]] * 3, rtol=1e-6)
    assert unit[3].tolist() == [0.0, 0.0]


def test_overwrite_scales_the_database_in_place_to_the_same_neighbours():
    x = clustered_features(300, dim=24)
    expected = knn(x, k=7)
    unit = knn_module.unit_rows(x)
    scratch = x.copy()
    found = knn(scratch, k=7, overwrite=True)
    np.testing.assert_array_equal(found.indices, expected.indices)
    np.testing.assert_array_equal(found.scores, expected.scores)
    np.testing.assert_array_equal(scratch, unit)  # the unit rows, bit for bit, where x lay
    readonly = x.copy()
    readonly.flags.writeable = False
    np.testing.assert_array_equal(knn(readonly, k=7, overwrite=True).indices, expected.indices)
    np.testing.assert_array_equal(readonly, x)  # read-only: a copy was scaled
    ip = x.copy()
    knn(ip, k=7, metric="ip", overwrite=True)
    np.testing.assert_array_equal(ip, x)  # only cosine scales


def test_bf16_rounding_errors_in_row_blocks_equal_the_whole_matrix(monkeypatch):
    x = torch.from_numpy(random_features(1000, dim=40) * 30)
    xb = x.to(torch.bfloat16)
    whole = (x - xb.to(torch.float32)).norm(dim=1).to(torch.float64) * (1 + 40 * 2.0 ** -23)
    monkeypatch.setitem(knn_torch.BLOCK_ELEMENTS, "cpu", 40 * 64)  # 64-row blocks, one partial
    assert torch.equal(knn_torch._Bf16Rounding(x, xb).err, whole)
