"""The report's "Annotators" section: how much the annotators agree, and each one's quality.

Shown when more than one person answered. Agreement over the tasks with two or more answers
(skips are not answers; "Drop" and "Not sure" are): Krippendorff's alpha (nominal: 1 = perfect,
0 = what chance gives, below 0 = worse; read by Krippendorff's guideline, :func:`alpha_reading`),
the share of answer pairs that agree, and the share of tasks with any disagreement, all over
the training and pool tasks. Per annotator: the answers on those same tasks (counted from
their votes) and apart the eval audit's, and from ``labels/annotators.parquet`` the agreement
with the resolved label and the accuracy the consensus estimated
(:mod:`relabeler.plugin.consensus`: Dawid-Skene's; CROWDLAB's quality score in its place, under
its own name; empty with majority vote), which it fits on the training and pool tasks only
(the file's own answer count takes in the eval audit's too).
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


def _voted(corrections: pd.DataFrame) -> list[list[tuple[str, str]]]:
    """Each task's (annotator, answer) pairs, skips left out, from the ``votes`` column."""
    if "votes" not in corrections.columns or "annotators" not in corrections.columns:
        return []
    units = []
    for who, votes in zip(corrections["annotators"], corrections["votes"], strict=True):
        if who is None or votes is None:
            continue
        given = [(name, vote[len(name) + 2:]) for name, vote in zip(who, votes, strict=True)]
        units.append([(name, g) for name, g in given if g != SKIPPED])
    return units


def _answers(corrections: pd.DataFrame) -> list[list[str]]:
    """Each task's answers (skips left out) from the ``votes`` column."""
    return [[g for _, g in unit] for unit in _voted(corrections)]


def _answer_counts(corrections: pd.DataFrame | None) -> Counter | None:
    """Answers (skips left out) per annotator; None without the ``votes`` column."""
    if corrections is None or "votes" not in corrections.columns:
        return None
    return Counter(name for unit in _voted(corrections) for name, _ in unit)


#: Krippendorff's guideline (Content Analysis, 2004, section 12.4): rely on data with alpha of
#: 0.800 or more; between 0.667 and 0.800, only for tentative conclusions
ALPHA_RELIABLE, ALPHA_TENTATIVE = 0.800, 0.667


def alpha_reading(alpha: float | None) -> str:
    """One line reading Krippendorff's alpha by Krippendorff's own guideline; '' for none."""
    if alpha is None:
        return ""
    if alpha >= ALPHA_RELIABLE:
        return ("At or above 0.800, the level Krippendorff's guideline asks for: the answers "
                "agree well enough to be relied on.")
    if alpha >= ALPHA_TENTATIVE:
        return ("Between 0.667 and 0.800: by Krippendorff's guideline, good for tentative "
                "conclusions only.")
    return ("Below 0.667, Krippendorff's lowest bound for tentative conclusions: the "
            "annotators agree too little to draw conclusions from their answers alone; the "
            "resolved labels rest on how the consensus weighs them (see each one's estimated "
            "accuracy below), and a second look at disputed tasks is worth more than usual.")


def annotators_section(store: RunStore, corrections: pd.DataFrame,
                       audit: pd.DataFrame | None = None) -> dict:
    """Agreement and per-annotator quality; empty with one annotator or none. ``corrections``:
    the training and pool answers, which the agreement is over; ``audit``: the eval audit's,
    counted apart."""
    if not store.exists(artifacts.ANNOTATORS.path):
        return {}
    people = store.read_table(artifacts.ANNOTATORS.path).to_pandas()
    if len(people) < 2:
        return {}
    units = [u for u in _answers(corrections) if len(u) >= 2]
    pairs = [(a == b) for u in units for a, b in combinations(u, 2)]
    disagree = [len(set(u)) > 1 for u in units]
    # the answers on the tasks the agreement is over; the file's count takes in the eval
    # audit's too (a file without votes leaves only that one, named so)
    counts, audited = _answer_counts(corrections), _answer_counts(audit)
    rows = []
    for row in people.itertuples(index=False):
        name = str(row.annotator)
        rows.append({"annotator": name,
                     "answers": int(row.answers) if counts is None else int(counts[name]),
                     "answers_all_tasks": int(row.answers),
                     "eval_audit_answers": None if audited is None else int(audited[name]),
                     "agreement_with_consensus": _number(row.agreement_with_consensus),
                     "estimated_accuracy": _number(getattr(row, "estimated_accuracy", None)),
                     "quality": _number(row.quality)})
    consensus = (corrections["consensus"].dropna().value_counts().to_dict()
                 if "consensus" in corrections.columns else {})
    return {"n_annotators": len(rows), "tasks_with_several_answers": len(units),
            "answers_base": "all tasks" if counts is None else "training and pool tasks",
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
    base = section.get("answers_base", "all tasks")
    on_training = base == "training and pool tasks"
    audit = on_training and any(a.get("eval_audit_answers") for a in people)
    rows = "".join(
        f"<tr><td>{html.escape(a['annotator'])}</td><td>{a['answers']}</td>"
        + (f"<td>{a['eval_audit_answers']}</td>" if audit else "")
        + f"<td>{_cell(a.get(key), pct=key == 'estimated_accuracy')}</td>"
        f"<td>{_cell(a['agreement_with_consensus'])}</td></tr>"
        for a in people)
    resolved = ", ".join(f"{n} by {html.escape(k)}" for k, n in
                         sorted(section["resolved_by"].items())) or "none"
    reading = alpha_reading(section["krippendorff_alpha"])
    bases = ("The agreement, the answers and the consensus's figures are all over the training "
             "and pool tasks" + ("; the eval audit's answers are counted apart." if audit
                                 else ".")
             if on_training else
             "The answers count every task the annotator answered (the eval audit's "
             "included; the answers' votes are not in the file); the agreement is over the "
             "training and pool tasks.")
    return (
        f"<h2>Annotators</h2><p>{section['n_annotators']} annotators; "
        f"{section['tasks_with_several_answers']} tasks with two or more answers. "
        f"Krippendorff's alpha <b>{_cell(section['krippendorff_alpha'], pct=False)}</b> "
        "(1 = perfect agreement, 0 = chance)"
        + (f". <i>{reading}</i> " if reading else ", ")
        + ("Pairwise agreement " if reading else "pairwise agreement ")
        + f"{_cell(section['pairwise_agreement'])}, tasks with disagreement "
        f"{_cell(section['share_disagreeing'])}. Tasks resolved: {resolved}.</p>"
        f"<p>{bases}</p>"
        f"<table><tr><th>annotator</th><th>answers ({base})</th>"
        + ("<th>eval-audit answers</th>" if audit else "")
        + f"<th>{header}</th><th>agreement with the resolved label</th></tr>{rows}</table>")
