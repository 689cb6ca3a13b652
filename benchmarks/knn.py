"""relabeler's exact kNN against scikit-learn's NearestNeighbors, on the same data in one run.

The baseline is what cleanlab runs for its kNN signals: ``NearestNeighbors(metric="cosine")``,
which for cosine is a brute-force search (``algorithm="brute"``), fit then ``kneighbors``.
Both find the k = 10 cosine neighbours of every row of an N x D random float32 matrix, each
row's own index excluded. relabeler is timed on all N queries. scikit-learn on N queries takes
minutes on a small machine, so by default it is timed on a seeded subset of
``--sklearn-queries`` rows and its query time is scaled linearly to N (the output says so);
pass ``--sklearn-queries 0`` to time it on all rows. The two must agree: the recall of
relabeler's neighbour sets against scikit-learn's on the timed rows must be >= 0.99, or the
run aborts.

For information, also: faiss's flat index on the same subset (scaled the same way), and the
IVF index's time and recall against the exact result at the same size.

    .venv/bin/python benchmarks/knn.py [--n 100000] [--dim 384] [--k 10] [--sklearn-queries 10000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

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
    """sklearn searched k + 1 neighbours of database rows: drop each row's own index (or the
    last neighbour when a tie pushed it out), keeping k."""
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="database rows (all are queries)")
    parser.add_argument("--dim", type=int, default=384, help="feature dimension")
    parser.add_argument("--k", type=int, default=10, help="neighbours per row")
    parser.add_argument("--sklearn-queries", type=int, default=10_000,
                        help="rows scikit-learn is timed on, scaled to --n (0: all rows)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed runs of each exact method; the best counts")
    parser.add_argument("--skip-ivf", action="store_true", help="leave out the IVF row")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    for name in ("n", "dim", "k", "repeats"):
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
    log.info("%d x %d float32, k=%d, cosine; %d CPUs, torch threads %d, load average %.2f",
             args.n, args.dim, args.k, os.cpu_count() or 1, torch.get_num_threads(),
             os.getloadavg()[0])
    load_before = os.getloadavg()[0]

    log.info("relabeler knn (exact), all %d rows", args.n)
    ours_s, ours = timed(lambda: knn(features, k=args.k, metric="cosine", index="flat"),
                         args.repeats)

    log.info("sklearn NearestNeighbors(metric='cosine'), %d rows", n_sub)
    model = NearestNeighbors(n_neighbors=args.k + 1, metric="cosine")
    fit_s, _ = timed(lambda: model.fit(features))
    query_s, found = timed(lambda: model.kneighbors(features[rows], return_distance=False),
                           args.repeats)
    sklearn_s = fit_s + query_s * scale
    sklearn_idx = drop_own_row(found, rows, args.k)
    agreement = set_recall(ours.indices[rows], sklearn_idx)
    if agreement < MIN_AGREEMENT:
        raise SystemExit(f"relabeler and sklearn disagree: recall {agreement:.4f} < "
                         f"{MIN_AGREEMENT}; the two do not compute the same thing")

    log.info("faiss flat index, %d rows", n_sub)
    faiss_query_s, faiss_nb = timed(lambda: knn(features, features[rows], k=args.k,
                                                query_rows=rows, metric="cosine",
                                                index="flat", backend="faiss", device="cpu"),
                                 args.repeats)
    faiss_s = faiss_query_s * scale
    faiss_agreement = set_recall(faiss_nb.indices, ours.indices[rows])

    results = {"n": args.n, "dim": args.dim, "k": args.k, "sklearn_queries": n_sub,
               "threads": torch.get_num_threads(), "relabeler_s": ours_s,
               "sklearn_s": sklearn_s, "sklearn_fit_s": fit_s, "sklearn_query_s": query_s,
               "faiss_flat_s": faiss_s, "agreement": agreement,
               "faiss_agreement": faiss_agreement, "ratio": sklearn_s / ours_s}
    if not args.skip_ivf:
        log.info("relabeler knn (IVF), all %d rows", args.n)
        ivf_s, ivf = timed(lambda: knn(features, k=args.k, metric="cosine", index="ivf",
                                       seed=args.seed))
        results.update(ivf_s=ivf_s, ivf_recall=set_recall(ivf.indices, ours.indices))

    scaled = f" (timed on {n_sub:,} queries, x{scale:g})" if scale != 1 else ""
    results.update(load_before=load_before, load_after=os.getloadavg()[0])
    print(f"\n{args.n:,} x {args.dim} random float32, k = {args.k}, cosine, self excluded; "
          f"{torch.get_num_threads()} threads; best of {args.repeats}; 1-min load average "
          f"{load_before:.2f} before, {results['load_after']:.2f} after")
    rows_out = [("relabeler knn, exact, all queries", ours_s, ""),
                ("sklearn NearestNeighbors (brute), fit + kneighbors" + scaled, sklearn_s, ""),
                ("relabeler knn, exact, faiss flat backend" + scaled, faiss_s, "")]
    if "ivf_s" in results:
        rows_out.append(("relabeler knn, IVF (default nlist, nprobe 32), all queries",
                         results["ivf_s"], f"recall@{args.k} {results['ivf_recall']:.4f}"))
    width = max(len(name) for name, _, _ in rows_out)
    print(f"{'method':<{width}} {'seconds':>9} {'vs sklearn':>11}")
    for name, seconds, note in rows_out:
        print(f"{name:<{width}} {seconds:>9.1f} {sklearn_s / seconds:>10.1f}x  {note}".rstrip())
    print(f"agreement with sklearn on the {n_sub:,} timed queries: recall {agreement:.4f} "
          f"(faiss flat vs relabeler: {faiss_agreement:.4f})")
    print(f"knn vs sklearn NearestNeighbors: {results['ratio']:.1f}x (target >= {TARGET:g}x)")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
        log.info("results written to %s", args.json)


if __name__ == "__main__":
    main()
