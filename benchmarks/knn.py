"""relabeler's kNN against faiss alone and scikit-learn, on the same data in one process.

Every method finds the k = 10 cosine neighbours of every row of an N x D random float32
matrix, each row's own index excluded:

- ``relabeler.selectors.knn.knn(features, k=k)``: the call production makes;
- faiss ``IndexFlatIP`` on the L2-normalised rows, searched with k + 1 (exact);
- faiss ``IndexIVFFlat`` (nlist about 4 sqrt(N), nprobe ``--nprobe``), with its recall@k
  against the flat result;
- scikit-learn ``NearestNeighbors(metric="cosine")`` (brute force), what cleanlab runs. On N
  queries it takes minutes on a small machine, so by default its query time is measured on a
  seeded subset of ``--sklearn-queries`` rows and scaled linearly to N (the output says so);
  ``--sklearn-queries 0`` times all rows.

relabeler must agree with faiss flat and scikit-learn (recall >= 0.99) or the run aborts.

    .venv/bin/python benchmarks/knn.py [--n 100000] [--dim 384] [--k 10] [--sklearn-queries 10000]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from pathlib import Path

import faiss
import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from relabeler.selectors.knn import knn

log = logging.getLogger("knn_benchmark")

MIN_AGREEMENT = 0.99
TARGET = 10.0


def set_recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the (Q, k) true neighbour sets present in ``found``, averaged over queries."""
    return float(np.mean([np.isin(t[t >= 0], f).mean()
                          for f, t in zip(found, truth, strict=True)]))


def drop_own_row(indices: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """A search of k + 1 neighbours of database rows: drop each row's own index (or the last
    neighbour when a tie pushed it out), keeping k."""
    own = indices == rows[:, None]
    own[~own.any(axis=1), -1] = True
    return indices[~own].reshape(len(rows), k)


def timed(run, repeats: int = 1):
    """(best seconds over ``repeats`` runs, the last result)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - started)
    return best, out


def faiss_flat(features: np.ndarray, k: int) -> np.ndarray:
    """Exact cosine self-join with faiss alone: (N, k) indices, own row dropped."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    _, found = index.search(unit, k + 1)
    return drop_own_row(found, np.arange(len(unit)), k)


def faiss_ivf(features: np.ndarray, k: int, *, nprobe: int, seed: int) -> np.ndarray:
    """Approximate cosine self-join with a faiss ``IndexIVFFlat`` trained on a seeded sample of
    64 rows per list: (N, k) indices, own row dropped."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    n, dim = unit.shape
    nlist = max(1, min(round(4 * math.sqrt(n)), n // 39))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    sample = np.random.default_rng(seed).choice(n, min(n, 64 * nlist), replace=False)
    index.train(unit[np.sort(sample)])
    index.add(unit)
    index.nprobe = min(nprobe, nlist)
    _, found = index.search(unit, k + 1)
    return drop_own_row(found, np.arange(n), k)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="database rows (all are queries)")
    parser.add_argument("--dim", type=int, default=384, help="feature dimension")
    parser.add_argument("--k", type=int, default=10, help="neighbours per row")
    parser.add_argument("--sklearn-queries", type=int, default=10_000,
                        help="rows scikit-learn is timed on, scaled to --n (0: all rows)")
    parser.add_argument("--nprobe", type=int, default=32, help="IVF lists visited per query")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed runs of relabeler and faiss flat; the best counts")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    for name in ("n", "dim", "k", "repeats", "nprobe"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.k >= args.n:
        parser.error("--k must be < --n")
    if args.sklearn_queries < 0:
        parser.error("--sklearn-queries must be >= 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    rng = np.random.default_rng(args.seed)
    features = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    n_sub = args.n if args.sklearn_queries == 0 else min(args.sklearn_queries, args.n)
    rows = np.sort(rng.choice(args.n, n_sub, replace=False))
    scale = args.n / n_sub
    load_before = os.getloadavg()[0]
    log.info("%d x %d float32, k=%d, cosine; %d CPUs, torch threads %d, faiss threads %d, "
             "load average %.2f", args.n, args.dim, args.k, os.cpu_count() or 1,
             torch.get_num_threads(), faiss.omp_get_max_threads(), load_before)

    log.info("relabeler knn, all %d rows", args.n)
    ours_s, ours = timed(lambda: knn(features, k=args.k), args.repeats)
    log.info("faiss IndexFlatIP, all %d rows", args.n)
    flat_s, flat = timed(lambda: faiss_flat(features, args.k), args.repeats)
    flat_agreement = set_recall(ours.indices, flat)
    log.info("faiss IndexIVFFlat (nprobe %d), all %d rows", args.nprobe, args.n)
    ivf_s, ivf = timed(lambda: faiss_ivf(features, args.k, nprobe=args.nprobe, seed=args.seed))
    ivf_recall = set_recall(ivf, flat)

    log.info("sklearn NearestNeighbors(metric='cosine'), %d rows", n_sub)
    model = NearestNeighbors(n_neighbors=args.k + 1, metric="cosine")
    fit_s, _ = timed(lambda: model.fit(features))
    query_s, found = timed(lambda: model.kneighbors(features[rows], return_distance=False))
    sklearn_s = fit_s + query_s * scale
    agreement = set_recall(ours.indices[rows], drop_own_row(found, rows, args.k))
    if min(agreement, flat_agreement) < MIN_AGREEMENT:
        raise SystemExit(f"relabeler disagrees with sklearn (recall {agreement:.4f}) or faiss "
                         f"flat ({flat_agreement:.4f}); they must compute the same thing")

    load_after = os.getloadavg()[0]
    results = {"n": args.n, "dim": args.dim, "k": args.k, "sklearn_queries": n_sub,
               "threads": torch.get_num_threads(), "relabeler_s": ours_s,
               "faiss_flat_s": flat_s, "faiss_ivf_s": ivf_s, "ivf_nprobe": args.nprobe,
               "ivf_recall": ivf_recall, "sklearn_s": sklearn_s, "sklearn_fit_s": fit_s,
               "sklearn_query_s": query_s, "agreement": agreement,
               "flat_agreement": flat_agreement, "ratio": sklearn_s / ours_s,
               "load_before": load_before, "load_after": load_after}
    scaled = f" (timed on {n_sub:,} queries, x{scale:g})" if scale != 1 else ""
    print(f"\n{args.n:,} x {args.dim} random float32, k = {args.k}, cosine, self excluded; "
          f"{torch.get_num_threads()} threads; best of {args.repeats}; 1-min load average "
          f"{load_before:.2f} before, {load_after:.2f} after")
    table = [("relabeler knn(features, k)", ours_s, ""),
             ("faiss IndexFlatIP", flat_s, ""),
             (f"faiss IndexIVFFlat, nprobe {args.nprobe}", ivf_s,
              f"recall@{args.k} {ivf_recall:.4f}"),
             ("sklearn NearestNeighbors (brute)" + scaled, sklearn_s, "")]
    width = max(len(name) for name, _, _ in table)
    print(f"{'method':<{width}} {'seconds':>9} {'vs sklearn':>11}")
    for name, seconds, note in table:
        print(f"{name:<{width}} {seconds:>9.2f} {sklearn_s / seconds:>10.1f}x  {note}".rstrip())
    print(f"agreement with sklearn on the {n_sub:,} timed queries: recall {agreement:.4f}; "
          f"with faiss flat on all rows: {flat_agreement:.4f}")
    print(f"relabeler knn vs faiss flat: {flat_s / ours_s:.2f}x")
    print(f"knn vs sklearn NearestNeighbors: {results['ratio']:.1f}x (target >= {TARGET:g}x)")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
        log.info("results written to %s", args.json)


if __name__ == "__main__":
    main()
