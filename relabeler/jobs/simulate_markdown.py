"""``simulation.md``: the tables of a ``relabeler simulate`` result (``simulation.json``) in
Markdown, as the console summary prints them too."""

from __future__ import annotations

from relabeler.jobs.eval_audit import FEW_EVAL_ROWS
from relabeler.redact import mask_url


def _share(value: float | None) -> str:
    """A share as a percentage, to the precision it needs (0.5%, 2.5%, 20%); n/a for None."""
    return "n/a" if value is None else f"{100 * value:.3g}%"


def markdown_table(result: dict) -> str:
    s = result["settings"]
    flipped = f"{_share(s['noise'])} {s['noise_kind']} noise"
    if (result.get("coverage") or {}).get("subgroup") and result["n_train"]:
        # the flips are made before --undercover moves most of a group's rows to the pool
        actual = result["n_flipped"] / result["n_train"]
        flipped += f" before the hold-out, {_share(actual)} of the training samples left"
    # a simulation.json written before the source URL was masked holds its password
    lines = [f"# Detection on {mask_url(result['dataset'])}", "",
             f"{result['n_train']} training samples, {result['n_flipped']} labels flipped "
             f"({flipped}, seed {s['seed']}), {s['mode']} mode, "
             f"{s['folds']} folds, {result['n_test']} test samples; K = number of flips.", "",
             "| method | AUROC | AUPRC | precision@K | recall@K |", "|---|---|---|---|---|"]
    for name, m in result["detection"].items():
        lines.append(f"| {name} | {m['auroc']:.3f} | {m['auprc']:.3f} | "
                     f"{m['precision_at_k']:.3f} | {m['recall_at_k']:.3f} |")
    lines += ["", "Single signals:", "", "| signal | AUROC | AUPRC | precision@K |",
              "|---|---|---|---|"]
    for name, m in result["signals"].items():
        lines.append(f"| {name} | {m['auroc']:.3f} | {m['auprc']:.3f} | "
                     f"{m['precision_at_k']:.3f} |")
    gain = result.get("gain")
    if gain:
        names = [k for k in gain["accuracy"] if k not in ("clean", "noisy")]
        clean, noisy = gain["accuracy"]["clean"], gain["accuracy"]["noisy"]
        # gain_experiment leaves the share out (None) where there is no gap to recover
        share = ("share of the noisy-to-clean gap recovered" if clean > noisy else
                 f"accuracy (no gap: clean {'=' if clean == noisy else '<'} noisy)")
        lines += ["", f"Retraining after oracle relabeling of the top K (clean accuracy "
                  f"{clean:.4f}, noisy {noisy:.4f}); {share}:", "",
                  "| budget | K | " + " | ".join(names) + " |",
                  "|---|---|" + "---|" * len(names)]
        for i, (b, k) in enumerate(zip(gain["budgets"], gain["budget_samples"], strict=True)):
            cells = []
            for name in names:
                rec = gain["gap_recovered"][name][i]
                acc = gain["accuracy"][name][i]
                cells.append(f"{acc:.4f}" + (f" ({rec:.0%})" if rec is not None else ""))
            lines.append(f"| {_share(b)} | {k} | " + " | ".join(cells) + " |")
    rounds = result.get("rounds")
    if rounds:
        sizes = rounds.get("round_sizes") or [rounds["budget_per_round"]]  # older files
        each = (f"{min(sizes)}" if min(sizes) == max(sizes) else f"{min(sizes)}-{max(sizes)}")
        lines += ["", f"{rounds['R']} rounds of {each} tasks (random "
                  "controls included), re-scored between rounds, against one shot at the same "
                  "budget: one shot recovers "
                  + _share(rounds["one_shot_gap_recovered"]) + " of the gap.", "",
                  "| round | corrected | gap recovered | remaining: estimate [95% interval] | "
                  "remaining: true |", "|---|---|---|---|---|"]
        for r, (found, share, (low, mid, high), true) in enumerate(zip(
                rounds["found"], rounds["gap_recovered"], rounds["estimated_remaining"],
                rounds["true_remaining"], strict=True)):
            estimate = "n/a" if mid is None else f"{mid:.0f} [{low:.0f}, {high:.0f}]"
            lines.append(f"| {r + 1} | {found} | {_share(share)} | {estimate} | {true} |")
    cov = result.get("coverage")
    if cov:
        lines += ["", f"Coverage acquisition: {cov['k']} pool samples picked near half of the "
                  f"under-covered eval samples; accuracy on the other {cov['n_heldout']}: "
                  f"selected {cov['selected']:.4f}, random {cov['random']:.4f}, none "
                  f"{cov['base']:.4f}."] if "k" in cov else []
        sub = cov.get("subgroup")
        if sub:
            acc = sub["accuracy"]
            lines += ["", f"Held-out sub-population {sub['spec']!r} ({sub['n_group_pool']} of "
                      f"{sub['n_pool']} pool rows, {sub['n_group_eval']} eval rows): of "
                      f"{sub['k']} acquired pool samples {_share(sub['precision_selected'])} are "
                      f"in it (random {_share(sub['precision_random'])}); its eval accuracy before "
                      f"{acc['before']:.4f}, after labeling the picks {acc['selected']:.4f}, "
                      f"after random ones {acc['random']:.4f}."]
    planted = result.get("shortcut")
    if planted:
        rank = planted["rank"] if planted["rank"] is not None else "not significant"
        lines += ["", f"Shortcut {planted['token']!r} planted into {planted['n_planted']} "
                  f"{planted['class']!r} training texts ({planted['rate']:.0%}): rank {rank} of "
                  f"{planted['n_significant']} significant tokens in scores/shortcuts.parquet; "
                  f"eval accuracy trained without / with it {planted['accuracy']['clean']:.4f} / "
                  f"{planted['accuracy']['shortcut']:.4f}, on the anti-shortcut eval "
                  f"{planted['anti_accuracy']['clean']:.4f} / "
                  f"{planted['anti_accuracy']['shortcut']:.4f}; mitigated "
                  f"({planted['mitigation']}) {planted['accuracy']['mitigated']:.4f}, on the "
                  f"anti-shortcut eval {planted['anti_accuracy']['mitigated']:.4f}."]
    audit = result.get("eval_audit")
    if audit:
        acc, configured = audit["accuracy"], audit.get("configured")
        lines += ["", f"Eval audit: {audit['n_flipped']} eval labels flipped "
                  f"({audit['rate']:.0%}); ranking AUPRC {audit['auprc']:.3f} (cleanlab best "
                  f"{max(audit['cleanlab_auprc'].values()):.3f}); eval accuracy on the clean "
                  f"labels {acc['clean']:.4f}, noisy {acc['noisy']:.4f}, audited "
                  f"{acc['audited']:.4f} (R x eval size = {audit['budget']} rows answered, "
                  f"{audit['found']} flips found)"
                  + (f", audited {configured['audited']:.4f} at studio.eval_audit_budget = "
                     f"{configured.get('asked', configured['budget'])}"
                     + (f" (every one of the {configured['budget']} eval rows)"
                        if configured.get("asked", 0) > configured["budget"] else "")
                     + f" ({configured['found']} found)." if configured else ".")
                  + (f" With {result['n_test']} eval rows, one row is "
                     f"{100 / result['n_test']:.1f} points of accuracy: too few for these "
                     f"figures to say much." if result["n_test"] < FEW_EVAL_ROWS else "")]
    crowd = result.get("annotators")
    if crowd:
        lines += ["", f"Simulated annotators of accuracy "
                  f"{' / '.join(f'{a:g}' for a in crowd['accuracies'])} answered the top "
                  f"{crowd['tasks']} tasks of the queue; the resolved label is right on: majority "
                  f"vote {crowd['majority_accuracy']:.4f}, relabeler's consensus "
                  f"{crowd['consensus_accuracy']:.4f}, cleanlab's CROWDLAB "
                  f"{crowd['crowdlab_accuracy']:.4f}."]
    lines += ["", f"Suggested label = true label on {result['suggestion_accuracy_on_flipped']:.1%}"
              " of the flipped rows.", "", "Seconds: " + ", ".join(
                  f"{k} {v:.1f}" for k, v in result["seconds"].items()), ""]
    return "\n".join(lines)
