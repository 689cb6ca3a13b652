"""The report's "Annotators" section: how much the annotators agree, and each one's quality.

Shown when more than one person answered. Agreement over the tasks with two or more answers
(skips are not answers; "Drop" and "Not sure" are): Krippendorff's alpha (nominal: 1 = perfect,
0 = what chance gives, below 0 = worse), the share of answer pairs that agree, and the share
of tasks with any disagreement. Per annotator, from ``labels/annotators.parquet``: answers,
agreement with the resolved label, and the accuracy the consensus estimated
(:mod:`relabeler.plugin.consensus`: Dawid-Skene's; CROWDLAB's quality score in its place, under
its own name; empty with majority vote).
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.store import RunStore

SKIPPED = "(skipped)"


def krippendorff_alpha(units: Sequence[Sequence[str]]) -> float | None:
    """Nominal Krippendorff's alpha over ``units`` (the answers given to each task); units
    with fewer than two answers do not count. None when no unit counts or every answer is
    the same value (alpha is undefined without variation)."""
    coincidence: Counter = Counter()
    for values in units:
        m = len(values)
        if m < 2:
            continue
        for a, b in combinations(values, 2):
            coincidence[a, b] += 1.0 / (m - 1)
            coincidence[b, a] += 1.0 / (m - 1)
    if not coincidence:
        return None
    totals: Counter = Counter()
    for (a, _), weight in coincidence.items():
        totals[a] += weight
    n = sum(totals.values())
    expected = n * (n - 1) - sum(t * (t - 1) for t in totals.values())
    if expected <= 0:
        return None
    observed = sum(w for (a, b), w in coincidence.items() if a == b)
    return float(((n - 1) * observed - sum(t * (t - 1) for t in totals.values())) / expected)


def _answers(corrections: pd.DataFrame) -> list[list[str]]:
    """Each task's answers (skips left out) from the ``votes`` column."""
    if "votes" not in corrections.columns or "annotators" not in corrections.columns:
        return []
    units = []
    for who, votes in zip(corrections["annotators"], corrections["votes"], strict=True):
        if who is None or votes is None:
            continue
        given = [vote[len(name) + 2:] for name, vote in zip(who, votes, strict=True)]
        units.append([g for g in given if g != SKIPPED])
    return units


def annotators_section(store: RunStore, corrections: pd.DataFrame) -> dict:
    """Agreement and per-annotator quality; empty with one annotator or none."""
    if not store.exists(artifacts.ANNOTATORS.path):
        return {}
    people = store.read_table(artifacts.ANNOTATORS.path).to_pandas()
    if len(people) < 2:
        return {}
    units = [u for u in _answers(corrections) if len(u) >= 2]
    pairs = [(a == b) for u in units for a, b in combinations(u, 2)]
    disagree = [len(set(u)) > 1 for u in units]
    rows = []
    for row in people.itertuples(index=False):
        rows.append({"annotator": str(row.annotator), "answers": int(row.answers),
                     "agreement_with_consensus": _number(row.agreement_with_consensus),
                     "estimated_accuracy": _number(getattr(row, "estimated_accuracy", None)),
                     "quality": _number(row.quality)})
    consensus = (corrections["consensus"].dropna().value_counts().to_dict()
                 if "consensus" in corrections.columns else {})
    return {"n_annotators": len(rows), "tasks_with_several_answers": len(units),
            "krippendorff_alpha": krippendorff_alpha(units),
            "pairwise_agreement": float(np.mean(pairs)) if pairs else None,
            "share_disagreeing": float(np.mean(disagree)) if disagree else None,
            "resolved_by": {str(k): int(v) for k, v in consensus.items()},
            "annotators": rows}


def _number(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _cell(value: float | None, pct: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if pct else f"{value:.2f}"


def render_annotators(section: dict) -> str:
    """The HTML of the section; empty when the report has none."""
    if not section:
        return ""
    # Dawid-Skene estimates each annotator's accuracy; CROWDLAB (cleanlab) gives a quality
    # score in [0, 1] instead, shown under its own name; majority vote gives neither
    people = section["annotators"]
    key, header = "estimated_accuracy", "estimated accuracy"
    if all(a["estimated_accuracy"] is None for a in people) and any(
            a.get("quality") is not None for a in people):
        key, header = "quality", "quality (CROWDLAB's score, 0 to 1)"
    rows = "".join(
        f"<tr><td>{html.escape(a['annotator'])}</td><td>{a['answers']}</td>"
        f"<td>{_cell(a.get(key), pct=key == 'estimated_accuracy')}</td>"
        f"<td>{_cell(a['agreement_with_consensus'])}</td></tr>"
        for a in people)
    resolved = ", ".join(f"{n} by {html.escape(k)}" for k, n in
                         sorted(section["resolved_by"].items())) or "none"
    return (
        f"<h2>Annotators</h2><p>{section['n_annotators']} annotators; "
        f"{section['tasks_with_several_answers']} tasks with two or more answers. "
        f"Krippendorff's alpha <b>{_cell(section['krippendorff_alpha'], pct=False)}</b> "
        "(1 = perfect agreement, 0 = chance), pairwise agreement "
        f"{_cell(section['pairwise_agreement'])}, tasks with disagreement "
        f"{_cell(section['share_disagreeing'])}. Tasks resolved: {resolved}.</p>"
        f"<table><tr><th>annotator</th><th>answers</th><th>{header}</th>"
        f"<th>agreement with the resolved label</th></tr>{rows}</table>")
