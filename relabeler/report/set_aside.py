"""The report's line on the answers pull set aside in ``labels/unmapped.parquet``: how many, by
the kind of their reason. None of them counts in the report's figures (corrections, labels
spent, annotators), so the report says how many there are and where they are.

The report may not import the Label Studio plugin (``.importlinter``), so a reason's kind is
found by how it starts, from the list below; each reason the plugin writes (``plugin.votes``,
``plugin.pull_tables``, ``plugin.reconcile``) is checked against it in
tests/report/test_set_aside.py.
"""

from __future__ import annotations

import html
from collections import Counter

from relabeler import artifacts
from relabeler.store import RunStore

#: (how a reason starts, its kind): the reasons name ids and answers, their kinds do not
REASON_KINDS = (
    ("the task is not in this run's manifest", "the task is not in this run's manifest"),
    ("answer ", "the answer is not a class of the run"),
    ("expected one answer", "not exactly one answer"),
    ("the annotation has no answer", "no answer"),
    ("superseded by annotation", "an earlier answer of an annotator who answered again"),
    ("known only from a webhook event", "known only from a webhook event, never seen on the "
                                        "server"),
    ("an update known only from a webhook event", "an update known only from a webhook event, "
                                                  "never seen on the server"),
    ("the task is gone from Label Studio", "known only from a webhook event, its task deleted "
                                           "in Label Studio"),
    ("the server showed it at an earlier pull", "deleted in Label Studio while no webhook "
                                                "reached relabeler"),
)
OTHER = "another reason"


def reason_kind(reason: str | None) -> str:
    """The kind of a reason of ``labels/unmapped.parquet``; :data:`OTHER` for one not listed."""
    for start, kind in REASON_KINDS:
        if (reason or "").startswith(start):
            return kind
    return OTHER


def set_aside_section(store: RunStore) -> dict:
    """How many answers ``labels/unmapped.parquet`` holds, by kind of reason (in the order of
    :data:`REASON_KINDS`), and the file's path; empty when the file is absent or empty."""
    path = artifacts.UNMAPPED.path
    if not store.exists(path):
        return {}
    reasons = store.read_table(path, columns=["reason"]).column("reason").to_pylist()
    if not reasons:
        return {}
    counts = Counter(reason_kind(r) for r in reasons)
    order = [kind for _, kind in REASON_KINDS] + [OTHER]
    return {"file": store.path(path), "answers": len(reasons),
            "by_reason": [{"reason": kind, "answers": counts[kind]} for kind in order
                          if counts[kind]]}


def render_set_aside(section: dict) -> str:
    """The HTML of the section; empty when the report has none."""
    if not section:
        return ""
    rows = "".join(f"<tr><td>{html.escape(r['reason'])}</td><td>{r['answers']}</td></tr>"
                   for r in section["by_reason"])
    n = section["answers"]
    were = "answer was" if n == 1 else "answers were"
    return (f"<p>{n} {were} set aside by pull and count nowhere in this report: "
            f"<code>{html.escape(section['file'])}</code> holds each one with its reason and "
            f"the annotation as Label Studio gave it.</p>"
            f"<table><tr><th>why set aside</th><th>answers</th></tr>{rows}</table>")
