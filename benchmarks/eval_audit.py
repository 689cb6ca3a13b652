"""The eval audit (issue 21) over seeds: ``relabeler simulate --eval-noise R`` per dataset and
seed, then one row per seed and a mean with a 95% t-interval per dataset.

Per run: the eval ranking's AUPRC against the flipped eval rows, cleanlab's best of its three
rankings on the same eval probabilities, the flipped rows in the top ``R x eval size`` (the
audit budget, answered by an oracle) and one model's accuracy on the clean, the noisy and the
audited eval labels. The target: audited accuracy within 1 point of clean, AUPRC at least
cleanlab's best.

``--rerank`` re-scores the eval rows of runs already in ``--out`` with the current code
(``relabeler.jobs.eval_audit``: seconds, from the run's stored features, probabilities and
out-of-fold probabilities) and rewrites their ``eval_audit`` block and
``scores/eval_suspects.parquet``; a seed without a finished run is simulated as usual.
A finished run (``--out/<dataset>-<seed>``) is read only when its ``simulation.json`` was made
with the arguments given now (sample, noise, eval noise, folds, mode, pool layers); one made
with others is refused, naming them.

``--mode full`` fine-tunes the whole encoder in new simulations (``train.mode = "full"``)
instead of training a head on the frozen packaged encoder's states (head, the default).

``--audit-budgets 20,30,40,50`` adds, per dataset, the same oracle audit at those budgets
(``strict``: R x eval size; the product's ``studio.eval_audit_budget`` defaults to 50): the
flips found and the clean - audited gap in points, from the stored runs.

    PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/eval_audit.py \\
        --datasets bbc-news,drug-review --seeds 0,1,2 --sample 1000 --out /tmp/eval-audit
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ray_temp import ray_temp_dir  # a sibling script, not a package
from reuse import record_settings, stored_result  # a sibling script, not a package

from relabeler import artifacts
from relabeler.config import RunConfig, ScoreConfig
from relabeler.jobs.eval_audit import write_eval_suspects
from relabeler.jobs.score import fit_view_noise, load_split, load_train_view
from relabeler.jobs.simulate import run_simulation, simulation_config
from relabeler.jobs.simulate_eval_audit import eval_audit_result, stored_audit
from relabeler.report.stats import format_interval
from relabeler.store import RunStore


def audit_run(dataset: str, seed: int, *, out: Path, sample: int, noise: float,
              eval_noise: float, folds: int, mode: str = "head", rerank: bool = False,
              pool_layers: int = 0) -> dict:
    """One simulation (reused when ``out`` already holds it, made with these arguments; its
    eval rows re-ranked when ``rerank``); its ``eval_audit`` block."""
    result_path = out / "simulation.json"
    settings = {"seed": seed, "sample": sample, "noise": noise, "eval_noise": eval_noise,
                "folds": folds, "mode": mode, "pool_layers": pool_layers}
    if stored_result(result_path, settings) is None:
        config = simulation_config(data=dataset, out=out, noise=noise, noise_kind="uniform",
                                   seed=seed, sample=sample, mode=mode, folds=folds,
                                   eval_noise=eval_noise)
        config.model.pool_layers = pool_layers
        config.ray.temp_dir = ray_temp_dir()
        run_simulation(config, out, progress=False, budgets=None)
        record_settings(result_path, settings)
    elif rerank:
        rerank_eval(out)
    return json.loads(result_path.read_text())["eval_audit"]


def rerank_eval(out: Path) -> None:
    """The eval rows of the finished simulation in ``out`` ranked again by the current code,
    from the run's stored artifacts, with the noise model its score stage was set to fit; its
    ``simulation.json`` gets the new ``eval_audit`` block."""
    store = RunStore(out / "run")
    view = load_train_view(store)
    cfg = ScoreConfig(noise_model=store.read_json(artifacts.SUMMARY.path)["noise_model"])
    write_eval_suspects(store, view, {"eval": load_split(store, "eval", view.classes)}, cfg,
                        fit_view_noise(view, cfg))
    result_path = out / "simulation.json"
    result = json.loads(result_path.read_text())
    result["eval_audit"] = eval_audit_result(
        store, configured_budget=RunConfig().studio.eval_audit_budget)
    result_path.write_text(json.dumps(result, indent=2), encoding="utf-8")


def budget_rows(dataset: str, runs: list[Path], budgets: list[str]) -> list[str]:
    """Markdown rows: per audit budget (``strict`` = R x eval size), the flips an oracle audit
    of the top rows finds over the runs and the clean - audited accuracy gap in points (mean
    with a 95% t-interval, the mean absolute gap, the runs within 1 point)."""
    lines = []
    for name in budgets:
        audits = [stored_audit(RunStore(run / "run"), None if name == "strict" else int(name))
                  for run in runs]
        gap = [100 * (a["clean"] - a["audited"]) for a in audits]
        low, high = min(a["budget"] for a in audits), max(a["budget"] for a in audits)
        rows = str(low) if low == high else f"{low}-{high}"
        lines.append(
            f"| {dataset} | {name} ({rows}) "
            f"| {sum(a['found'] for a in audits)} of {sum(a['n_flipped'] for a in audits)} | "
            f"{format_interval(gap, 2)} | {sum(abs(g) for g in gap) / len(gap):.2f} | "
            f"{sum(abs(g) <= 1 for g in gap)} of {len(gap)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="bbc-news,drug-review")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--sample", type=int, default=0, help="rows per dataset; 0 = all")
    parser.add_argument("--noise", type=float, default=0.1, help="training label noise")
    parser.add_argument("--eval-noise", type=float, default=0.1)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--mode", choices=["head", "full"], default="head",
                        help="train.mode of new simulations (full: fine-tune the encoder)")
    parser.add_argument("--pool-layers", type=int, default=0,
                        help="[model] pool_layers of new simulations (0 = what relabeler ships)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rerank", action="store_true",
                        help="rank the eval rows of finished runs in --out again")
    parser.add_argument("--audit-budgets", default="",
                        help="also audit the top N eval rows, e.g. strict,20,30,40,50")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [b for b in args.audit_budgets.split(",") if b]
    audit_table = []
    print("| dataset | seed | eval ranking AUPRC | cleanlab best | flipped in the top budget | "
          "accuracy, clean labels | noisy labels | audited labels |")
    print("|---|---|---|---|---|---|---|---|")
    for dataset in args.datasets.split(","):
        rows = []
        for seed in seeds:
            audit = audit_run(dataset, seed, out=args.out / f"{dataset}-{seed}",
                              sample=args.sample, noise=args.noise, eval_noise=args.eval_noise,
                              folds=args.folds, mode=args.mode, rerank=args.rerank,
                              pool_layers=args.pool_layers)
            acc = audit["accuracy"]
            best = max(audit["cleanlab_auprc"].values())
            rows.append((audit["auprc"], best, acc["clean"], acc["noisy"], acc["audited"]))
            print(f"| {dataset} | {seed} | {audit['auprc']:.3f} | {best:.3f} | "
                  f"{audit['found']} of {audit['budget']} | {acc['clean']:.4f} | "
                  f"{acc['noisy']:.4f} | {acc['audited']:.4f} |", flush=True)
        cols = list(zip(*rows, strict=True))
        gap = [c - a for c, a in zip(cols[2], cols[4], strict=True)]
        a, b, c, d, e = (format_interval(col) for col in cols[:5])
        print(f"| {dataset} | mean, 95% CI | {a} | {b} | | {c} | {d} | {e} |")
        print(f"| {dataset} | clean - audited | | | | {format_interval(gap)} | | |", flush=True)
        audit_table += budget_rows(dataset, [args.out / f"{dataset}-{s}" for s in seeds], budgets)
    if audit_table:
        print("\n| dataset | audit budget (rows) | flips found | clean - audited (points) | "
              "mean absolute gap | runs within 1 point |\n|---|---|---|---|---|---|")
        print("\n".join(audit_table))


if __name__ == "__main__":
    main()
