"""``relabeler simulate --eval-noise R``: the eval audit against eval labels flipped on purpose.

An oracle answers the top rows of the eval ranking (``scores/eval_suspects.parquet``) and the
model's eval accuracy is measured on the clean, the noisy and the audited labels:
:func:`eval_audit_result` is ``simulation.json``'s ``"eval_audit"`` block, :func:`stored_audit`
the same audit at any budget on a finished run (audit budgets compared without simulating
again).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.jobs.score import load_split
from relabeler.report.metrics import detection_metrics
from relabeler.selectors.confidence import cleanlab_scores
from relabeler.store import RunStore


def eval_audit_result(store: RunStore, configured_budget: int | None = None) -> dict:
    """The ranking's AUPRC (and cleanlab's on the same eval probabilities) against the flipped
    eval labels, and one model's accuracy on the clean, the noisy and the audited eval labels.
    ``budget``, ``found`` and ``accuracy.audited``: the strict audit, the top ``R x eval size``
    rows answered by an oracle. ``configured_budget`` (the run's ``studio.eval_audit_budget``,
    what ``push`` sends by default) adds a ``configured`` block with the same audit at that
    budget (capped at the eval rows)."""
    evaluation, ranked, pred = _stored_eval(store)
    flipped = evaluation["flipped"].reindex(ranked["id"]).to_numpy(dtype=bool)
    view = load_split(store, "eval", store.read_json(artifacts.LABELS.path))
    is_flipped = evaluation["flipped"].reindex(view.ids).to_numpy(dtype=bool)
    baselines = {name: detection_metrics(score, is_flipped)["auprc"]
                 for name, score in cleanlab_scores(view.labels, view.probs).items()}
    strict = audit_at(evaluation, ranked["id"], pred, _strict_budget(store, evaluation))
    result = {"rate": _eval_noise_rate(store), "budget": strict["budget"],
              "auprc": detection_metrics(ranked["suspect_score"].to_numpy(dtype=np.float64),
                                         flipped)["auprc"],
              "cleanlab_auprc": baselines,
              "found": strict["found"], "n_flipped": int(flipped.sum()),
              "accuracy": {"clean": float((pred == evaluation["true_label"]).mean()),
                           "noisy": float((pred == evaluation["label"]).mean()),
                           "audited": strict["audited"]}}
    if configured_budget is not None:
        result["configured"] = {**audit_at(evaluation, ranked["id"], pred,
                                           min(configured_budget, len(ranked))),
                                "asked": int(configured_budget)}
    return result


def audit_at(evaluation: pd.DataFrame, ranked_ids: pd.Series, pred: pd.Series,
             budget: int) -> dict:
    """An oracle answers the top ``budget`` eval rows of the ranking (``ranked_ids``, best
    first). evaluation: id-indexed label, true_label, flipped; pred: the model's eval
    predictions, id-indexed. Returns the budget, the flipped rows found and the model's
    accuracy on the audited labels."""
    top = ranked_ids.head(budget)
    audited = evaluation["label"].copy()
    audited.loc[top] = evaluation.loc[top, "true_label"]
    return {"budget": int(budget), "found": int(evaluation.loc[top, "flipped"].sum()),
            "audited": float((pred.reindex(evaluation.index) == audited).mean())}


def stored_audit(store: RunStore, budget: int | None = None) -> dict:
    """:func:`audit_at` on a finished simulation (``budget`` None: R x eval size; capped at the
    eval rows), plus the flips and the clean-label accuracy."""
    evaluation, ranked, pred = _stored_eval(store)
    if budget is None:
        budget = _strict_budget(store, evaluation)
    return {**audit_at(evaluation, ranked["id"], pred, min(budget, len(ranked))),
            "n_flipped": int(evaluation["flipped"].sum()),
            "clean": float((pred == evaluation["true_label"]).mean())}


def _stored_eval(store: RunStore) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """The eval split (id-indexed), its ranking (best first) and the model's predictions
    (aligned with the split)."""
    evaluation = store.read_table(artifacts.EVAL.path).to_pandas().set_index("id")
    ranked = store.read_table(artifacts.EVAL_SUSPECTS.path).to_pandas()
    pred = store.read_table(artifacts.EVAL_PREDICTIONS.path).to_pandas().set_index(
        "id")["pred"].reindex(evaluation.index)
    return evaluation, ranked, pred


def _eval_noise_rate(store: RunStore) -> float:
    return float(store.stage_info("data")["info"]["eval_noise_rate"])


def _strict_budget(store: RunStore, evaluation: pd.DataFrame) -> int:
    """R x eval size: as many rows as labels were flipped."""
    return int(round(_eval_noise_rate(store) * len(evaluation)))
