"""Tests for relabeler.selectors.knn: exact against a float64 brute force, on every CPU engine
(faiss and torch), plus the cross-cutting checks: row order, batch = one at a time, sharded =
unsharded, ties tolerated, CPU = GPU path."""

from __future__ import annotations

import logging

import faiss
import numpy as np
import pytest
import torch

from relabeler.selectors.knn import (
    METRICS,
    Neighbors,
    _torch_knn,
    ivf_recall,
    knn,
    knn_sharded,
    merge_topk,
)

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# (backend, device) pairs that run on any machine
CPU_ENGINES = [("faiss", "cpu"), ("torch", "cpu")]
ATOL = {"cosine": 1e-5, "ip": 1e-4, "l2": 1e-3}


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


def overlap(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the (Q, k) true neighbour sets that ``found`` contains."""
    return float(np.mean([np.isin(t, f).mean() for f, t in zip(found, truth, strict=True)]))


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
@pytest.mark.parametrize("backend,device", CPU_ENGINES)
def test_self_join_matches_brute_force(backend, device, metric):
    db = random_features(300)
    result = knn(db, k=10, metric=metric, backend=backend, device=device)
    assert result.exact and result.metric == metric
    assert_matches(result, db, k=10, metric=metric, exclude_rows=np.arange(300))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend,device", CPU_ENGINES)
def test_explicit_queries_match_brute_force(backend, device, metric):
    db, queries = random_features(300), random_features(40, seed=1)
    result = knn(db, queries, k=7, metric=metric, backend=backend, device=device)
    assert_matches(result, db, queries, k=7, metric=metric)


@pytest.mark.parametrize("backend,device", CPU_ENGINES)
def test_scores_sorted_best_first(backend, device):
    db = random_features(200)
    sims = knn(db, k=12, metric="cosine", backend=backend, device=device).scores
    dists = knn(db, k=12, metric="l2", backend=backend, device=device).scores
    assert (np.diff(sims, axis=1) <= 0).all()
    assert (np.diff(dists, axis=1) >= 0).all()


def test_torch_path_on_cpu_equals_faiss():
    """CPU = GPU path: the torch implementation, run on CPU tensors, against faiss."""
    db = random_features(300, dim=24)
    for metric in METRICS:
        prepared = db / np.linalg.norm(db, axis=1, keepdims=True) if metric == "cosine" else db
        indices, scores = _torch_knn(prepared, prepared, k=9, metric=metric,
                                     self_rows=np.arange(300), self_join=True, block_size=128,
                                     device="cpu", progress=False)
        reference = knn(db, k=9, metric=metric, backend="faiss", device="cpu")
        np.testing.assert_allclose(scores, reference.scores, atol=ATOL[metric], rtol=1e-5)
        assert (indices == reference.indices).mean() > 0.99


@pytest.mark.parametrize("metric", METRICS)
def test_torch_blocks_and_sparse_selection_match_brute_force(monkeypatch, metric):
    """Small score blocks (80 x 80) so that the database is split in chunks and the CPU
    selection often takes its sparse route (the entries beating their row's k-th best)."""
    from relabeler.selectors import knn as knn_module

    monkeypatch.setitem(knn_module.TORCH_BLOCK_ELEMENTS, "cpu", 80 * 80)
    merges = []
    real_merge_sparse = knn_module._merge_sparse
    monkeypatch.setattr(knn_module, "_merge_sparse",
                        lambda *args: merges.append(1) or real_merge_sparse(*args))
    db = np.repeat(random_features(500, dim=8), [1, 2] * 250, axis=0)  # ties, too
    queries = random_features(150, dim=8, seed=4)
    own = knn(db, k=3, metric=metric, backend="torch", device="cpu")
    assert_matches(own, db, k=3, metric=metric, exclude_rows=np.arange(len(db)))
    self_join_merges = len(merges)
    other = knn(db, queries, k=3, metric=metric, backend="torch", device="cpu")
    assert_matches(other, db, queries, k=3, metric=metric)
    assert self_join_merges > 25 and len(merges) - self_join_merges > 3


@pytest.mark.parametrize("transposed", [False, True])
def test_sparse_candidates_are_the_entries_above_each_threshold(transposed):
    """Every entry above its target's bar, sorted by target then source, with its value; a
    full top-k (None) where a target has no bar yet or too many entries pass."""
    from relabeler.selectors.knn import _candidates

    block = torch.tensor([[0.9, 0.1, 0.5],
                          [0.2, 0.8, 0.8],
                          [0.7, 0.3, 0.0],
                          [0.6, 0.6, 0.4]])
    if transposed:   # targets are the 3 columns
        bars = np.array([0.65, 0.5, 0.45], dtype=np.float32)
        expected = ([0, 0, 1, 1, 2, 2], [0, 2, 1, 3, 0, 1], [0.9, 0.7, 0.8, 0.6, 0.5, 0.8])
    else:            # targets are the 4 rows
        bars = np.array([0.5, 0.7, 0.8, 0.5], dtype=np.float32)
        expected = ([0, 1, 1, 3, 3], [0, 1, 2, 0, 1], [0.9, 0.8, 0.8, 0.6, 0.6])
    target, source, values = _candidates(block, bars, transposed=transposed, dense_share=0.5)
    np.testing.assert_array_equal(target, expected[0])
    np.testing.assert_array_equal(source, expected[1])
    np.testing.assert_allclose(values, expected[2], rtol=1e-6)
    assert _candidates(block, bars, transposed=transposed, dense_share=0.25) is None
    bars[1] = -np.inf
    assert _candidates(block, bars, transposed=transposed, dense_share=1.0) is None


@pytest.mark.parametrize("metric", ["cosine", "ip"])
@pytest.mark.parametrize("extra", [12, 1])
def test_bf16_self_join_is_exact(monkeypatch, metric, extra):
    """The bf16 scan with an fp32 re-score: certified rows equal brute force, and rows the
    bound cannot certify (many with a single extra candidate, and among duplicated rows) are
    searched again in fp32, so the whole result is exact."""
    from relabeler.selectors import knn as knn_module

    monkeypatch.setitem(knn_module.TORCH_BLOCK_ELEMENTS, "cpu", 96 * 96)
    monkeypatch.setattr(knn_module, "CANDIDATE_EXTRA", extra)
    calls = {"certified": 0, "redo_rows": 0}
    real_certified, real_search = knn_module._certified_self_join, knn_module._torch_search

    def certified(*args, **kwargs):
        calls["certified"] += 1
        return real_certified(*args, **kwargs)

    def search(queries, *args, **kwargs):
        calls["redo_rows"] += len(queries)
        return real_search(queries, *args, **kwargs)

    monkeypatch.setattr(knn_module, "_certified_self_join", certified)
    monkeypatch.setattr(knn_module, "_torch_search", search)
    db = np.concatenate([clustered_features(600, dim=32), random_features(100, dim=32)[:50]
                         .repeat(2, axis=0)])                        # 50 duplicated pairs
    found = knn(db, k=6, metric=metric, backend="torch", device="cpu", precision="bf16")
    assert calls["certified"] == 1
    assert_matches(found, db, k=6, metric=metric, exclude_rows=np.arange(len(db)))
    if extra == 1:
        assert calls["redo_rows"] > 0          # the fallback ran, and the result is exact
    assert calls["redo_rows"] < len(db)
    # the fp32 path gives the same neighbours
    plain = knn(db, k=6, metric=metric, backend="torch", device="cpu", precision="fp32")
    np.testing.assert_allclose(found.scores, plain.scores, atol=ATOL[metric], rtol=1e-5)


def test_rescore_gives_each_candidates_inner_product_in_its_slot():
    from relabeler.selectors.knn import _rescore

    x = torch.from_numpy(random_features(40, dim=24))
    candidates = (torch.arange(40)[:, None] * 7 + torch.tensor([[5, 1, 39, 12]])) % 40
    # unsorted ids, a row's own id, and an id shared by several rows
    candidates[:3] = torch.tensor([[7, 3, 39, 0], [1, 5, 2, 7], [39, 38, 0, 7]])
    got = _rescore(x, x, candidates)
    assert got.shape == (40, 4) and got.dtype == torch.float32
    want = np.einsum("rd,rcd->rc", x.double().numpy(), x[candidates].double().numpy())
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
    assert got[1, 0].item() == pytest.approx(float(x[1].double() @ x[1].double()), rel=1e-6)
    assert got[0, 3].item() == pytest.approx(float(x[0].double() @ x[0].double()), rel=1e-6)
    # queries other than the rows themselves (the bf16 check's sample): rows 3, 8 and 20
    np.testing.assert_allclose(_rescore(x[[3, 8, 20]], x, candidates[[3, 8, 20]]).numpy(),
                               got[[3, 8, 20]].numpy(), rtol=1e-6, atol=1e-6)


def test_bf16_precision_is_chosen_only_where_it_pays(monkeypatch):
    from relabeler.selectors import knn as knn_module

    used = []
    real = knn_module._certified_self_join
    monkeypatch.setattr(knn_module, "_certified_self_join",
                        lambda *a, **kw: used.append(1) or real(*a, **kw))
    assert isinstance(knn_module.cpu_has_bf16_dot(), bool)
    db = random_features(300, dim=16)
    monkeypatch.setattr(knn_module, "BF16_SELF_JOIN_MIN", 200)
    monkeypatch.setattr(knn_module, "cpu_has_bf16_dot", lambda: False)
    knn(db, k=4, backend="torch", device="cpu")                      # no bf16 dot products
    assert used == []
    monkeypatch.setattr(knn_module, "cpu_has_bf16_dot", lambda: True)
    knn(db, k=4, backend="torch", device="cpu")                      # auto: bf16 from 200 rows
    assert used == [1]
    knn(db, db[:10], k=4, backend="torch", device="cpu")             # explicit queries: fp32
    knn(db, k=4, metric="l2", backend="torch", device="cpu")         # l2: fp32
    knn(db[:150], k=4, backend="torch", device="cpu")                # below the size: fp32
    assert used == [1]
    # rows packed so tightly that bf16 rounding hides their order (as in fine-tuned features):
    # the sampled check finds almost none certifiable, so auto stays in fp32, exactly
    tight = (np.repeat(random_features(10, dim=16) * 5, 30, axis=0)
             + random_features(300, dim=16, seed=1) * 1e-3)
    found = knn(tight, k=4, backend="torch", device="cpu")
    assert used == [1]
    assert_matches(found, tight, k=4, metric="cosine", exclude_rows=np.arange(300))
    bf16 = knn(tight, k=4, backend="torch", device="cpu", precision="bf16")  # forced: exact too
    assert used == [1, 1]
    np.testing.assert_allclose(bf16.scores, found.scores, atol=ATOL["cosine"], rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"precision": "fp16"}, "precision must be one of"),
    ({"precision": "bf16", "metric": "l2"}, "precision='bf16' supports metric"),
])
def test_bad_precision(kwargs, message):
    with pytest.raises(ValueError, match=message):
        knn(random_features(20), k=3, **kwargs)


# ---------------------------------------------------------------------------------------------
# self-exclusion and ties


@pytest.mark.parametrize("backend,device", CPU_ENGINES)
def test_no_row_is_its_own_neighbour(backend, device):
    db = random_features(250)
    for metric in METRICS:
        result = knn(db, k=15, metric=metric, backend=backend, device=device)
        assert not (result.indices == np.arange(250)[:, None]).any()
        assert (result.indices >= 0).all()


@pytest.mark.parametrize("backend,device", CPU_ENGINES)
def test_exact_duplicate_is_the_top_neighbour(backend, device):
    db = random_features(200)
    db[17] = db[5]
    result = knn(db, k=5, metric="cosine", backend=backend, device=device)
    assert result.indices[5, 0] == 17 and result.indices[17, 0] == 5
    np.testing.assert_allclose(result.scores[[5, 17], 0], 1.0, atol=1e-6)
    l2 = knn(db, k=5, metric="l2", backend=backend, device=device)
    assert l2.indices[5, 0] == 17 and l2.scores[5, 0] < 1e-3


def test_without_exclusion_a_row_finds_itself():
    db = random_features(100)
    result = knn(db, k=3, exclude_self=False)
    np.testing.assert_array_equal(result.indices[:, 0], np.arange(100))
    np.testing.assert_allclose(result.scores[:, 0], 1.0, atol=1e-6)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend,device", CPU_ENGINES)
def test_ties_tolerated(backend, device, metric):
    """40 distinct rows, each 6 times: every row has 5 exact ties for first place."""
    db = np.repeat(random_features(40), 6, axis=0)
    result = knn(db, k=8, metric=metric, backend=backend, device=device)
    assert_matches(result, db, k=8, metric=metric, exclude_rows=np.arange(len(db)))
    assert not (result.indices == np.arange(len(db))[:, None]).any()
    # the five copies come first, in any order
    copies = np.arange(len(db))[:, None] // 6 == result.indices[:, :5] // 6
    assert copies.all()


# ---------------------------------------------------------------------------------------------
# row order, batches, shards


@pytest.mark.parametrize("backend,device", CPU_ENGINES)
def test_row_order_does_not_matter(backend, device):
    db = random_features(300)
    perm = np.random.default_rng(1).permutation(300)
    plain = knn(db, k=10, backend=backend, device=device)
    shuffled = knn(db[perm], k=10, backend=backend, device=device)
    # row i of the shuffled database is original row perm[i]
    back = np.argsort(perm)
    np.testing.assert_allclose(shuffled.scores[back], plain.scores, atol=1e-6)
    np.testing.assert_array_equal(perm[shuffled.indices[back]], plain.indices)


@pytest.mark.parametrize("backend,device", CPU_ENGINES)
def test_batch_equals_one_at_a_time(backend, device):
    db, queries = random_features(60, dim=8), random_features(20, dim=8, seed=3)
    for metric in METRICS:
        big = knn(db, k=6, metric=metric, backend=backend, device=device)
        tiny = knn(db, k=6, metric=metric, backend=backend, device=device, block_size=1)
        np.testing.assert_allclose(tiny.scores, big.scores, atol=ATOL[metric])
        np.testing.assert_array_equal(tiny.indices, big.indices)
        batch = knn(db, queries, k=6, metric=metric, backend=backend, device=device)
        for i in range(len(queries)):
            alone = knn(db, queries[i:i + 1], k=6, metric=metric, backend=backend,
                        device=device)
            np.testing.assert_allclose(alone.scores[0], batch.scores[i], atol=ATOL[metric])
            np.testing.assert_array_equal(alone.indices[0], batch.indices[i])


@pytest.mark.parametrize("exclude_self", [True, False])
@pytest.mark.parametrize("n_shards", [1, 3, 7])
def test_sharded_equals_unsharded(n_shards, exclude_self):
    db = random_features(400)
    for metric in METRICS:
        whole = knn(db, k=10, metric=metric, exclude_self=exclude_self)
        sharded = knn_sharded(db, n_shards=n_shards, k=10, metric=metric,
                              exclude_self=exclude_self)
        np.testing.assert_allclose(sharded.scores, whole.scores, atol=ATOL[metric])
        assert (sharded.indices == whole.indices).mean() > 0.999
        if exclude_self:
            assert not (sharded.indices == np.arange(400)[:, None]).any()


def test_sharded_explicit_queries_with_query_rows():
    db = random_features(200)
    rows = np.array([3, 150, 199, 0, -1])
    queries = np.vstack([db[rows[:4]], random_features(1, seed=9)])
    result = knn_sharded(db, queries, n_shards=4, k=5, query_rows=rows)
    assert not (result.indices == rows[:, None]).any()
    assert_matches(result, db, queries, k=5, metric="cosine", exclude_rows=rows)
    reference = knn(db, queries, k=5, query_rows=rows)
    np.testing.assert_allclose(result.scores, reference.scores, atol=1e-6)
    np.testing.assert_array_equal(result.indices, reference.indices)


def test_more_shards_than_rows():
    db = random_features(5, dim=4)
    result = knn_sharded(db, n_shards=50, k=3)
    np.testing.assert_allclose(result.scores, knn(db, k=3).scores, atol=1e-6)


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
    assert merged.exact and merged.metric == "l2"


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
# IVF


def test_ivf_recall_on_clustered_data(caplog):
    db = clustered_features(3000)
    with caplog.at_level(logging.INFO, logger="relabeler.selectors.knn"):
        result = knn(db, k=10, index="ivf", nlist=16, nprobe=16)
    assert result.exact is False
    exact = knn(db, k=10, index="flat")
    assert overlap(result.indices, exact.indices) >= 0.9
    assert any("recall" in record.getMessage() for record in caplog.records)


def test_auto_index_switches_at_threshold():
    db = clustered_features(2000)
    assert knn(db, k=5, ivf_threshold=1000).exact is False
    assert knn(db, k=5, ivf_threshold=5000).exact is True


def test_ivf_recall_returns_fraction():
    db = clustered_features(2000)
    recall = ivf_recall(db, k=5, sample=100, nlist=20, nprobe=2)
    assert isinstance(recall, float) and 0.0 <= recall <= 1.0
    assert ivf_recall(db, k=5, sample=100, nlist=20, nprobe=20) >= 0.9


def test_ivf_excludes_self():
    db = clustered_features(2000)
    result = knn(db, k=10, index="ivf", nlist=10, nprobe=3)
    assert not (result.indices == np.arange(2000)[:, None]).any()


# ---------------------------------------------------------------------------------------------
# edges and bad input


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend,device", CPU_ENGINES)
def test_k_at_least_n_pads(backend, device, metric):
    db = random_features(5, dim=4)
    worst = np.inf if metric == "l2" else -np.inf
    own = knn(db, k=10, metric=metric, backend=backend, device=device)
    assert own.indices.shape == (5, 10)
    assert (own.indices[:, :4] >= 0).all() and (own.indices[:, 4:] == -1).all()
    assert (own.scores[:, 4:] == worst).all() and np.isfinite(own.scores[:, :4]).all()
    for i in range(5):
        assert sorted(own.indices[i, :4]) == [j for j in range(5) if j != i]
    other = knn(db, random_features(3, dim=4, seed=1), k=10, metric=metric, backend=backend,
                device=device)
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


@pytest.mark.parametrize("backend,device", CPU_ENGINES)
def test_zero_vectors_under_cosine_score_zero(backend, device):
    db = random_features(50)
    db[[3, 20]] = 0
    before = db.copy()
    result = knn(db, k=49, metric="cosine", backend=backend, device=device)
    assert np.isfinite(result.scores).all()
    np.testing.assert_allclose(result.scores[3], 0.0, atol=1e-7)
    zero_hits = np.isin(result.indices, [3, 20])
    np.testing.assert_allclose(result.scores[zero_hits], 0.0, atol=1e-7)
    np.testing.assert_array_equal(db, before)  # input untouched


def test_self_exclusion_options_are_checked():
    db, queries = random_features(20), random_features(4, seed=1)
    with pytest.raises(ValueError, match="query_rows"):
        knn(db, queries, k=3, exclude_self=True)
    with pytest.raises(ValueError, match=r"query_rows must have shape \(4,\).*\(3,\)"):
        knn(db, queries, k=3, query_rows=np.arange(3))
    with pytest.raises(ValueError, match="contradicts"):
        knn(db, queries, k=3, query_rows=np.arange(4), exclude_self=False)
    with pytest.raises(ValueError, match="explicit queries"):
        knn(db, k=3, query_rows=np.arange(20))
    # query i is database row 10 + i; rows beyond N exclude nothing
    result = knn(db, db[10:14], k=3, query_rows=np.array([10, 11, 12, 99]))
    assert not (result.indices[:3] == np.arange(10, 13)[:, None]).any()
    assert result.indices[3, 0] == 13


@pytest.mark.parametrize("option,value", [("metric", "euclid"), ("index", "hnsw"),
                                          ("device", "tpu"), ("backend", "annoy"),
                                          ("block_size", 0), ("nprobe", 0), ("nlist", 0)])
def test_unknown_options_raise(option, value):
    with pytest.raises(ValueError, match=option):
        knn(random_features(20), k=3, **{option: value})


def test_torch_backend_refuses_ivf_and_nlist_above_n():
    with pytest.raises(ValueError, match="backend='torch'"):
        knn(random_features(20), k=3, backend="torch", index="ivf")
    with pytest.raises(ValueError, match="nlist must be <= the database rows"):
        knn(random_features(20), k=3, index="ivf", nlist=21)


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
        cuda = knn(db, q, k=10, metric=metric, device="cuda", backend="torch", block_size=512)
        cpu = knn(db, q, k=10, metric=metric, device="cpu", backend="faiss")
        np.testing.assert_allclose(cuda.scores, cpu.scores, atol=ATOL[metric], rtol=1e-4)
        assert (cuda.indices == cpu.indices).mean() > 0.99


@pytest.mark.gpu
@gpu
def test_torch_cuda_sharded_blocks_and_self_exclusion():
    db = np.repeat(random_features(500, dim=16), 2, axis=0)
    result = knn(db, k=5, device="cuda", backend="torch", block_size=64)
    assert not (result.indices == np.arange(1000)[:, None]).any()
    assert (result.indices[:, 0] // 2 == np.arange(1000) // 2).all()
    assert_matches(result, db, k=5, metric="cosine", exclude_rows=np.arange(1000))


@pytest.mark.gpu
@gpu
@pytest.mark.skipif(not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0,
                    reason="needs faiss with GPU support")
@pytest.mark.parametrize("index", ["flat", "ivf"])
def test_faiss_gpu_equals_cpu(index):
    db = clustered_features(5000, dim=32)
    gpu_result = knn(db, k=10, index=index, nlist=20, nprobe=20, device="cuda",
                     backend="faiss")
    cpu_result = knn(db, k=10, index="flat", device="cpu", backend="faiss")
    assert gpu_result.exact is (index == "flat")
    assert overlap(gpu_result.indices, cpu_result.indices) >= 0.95
