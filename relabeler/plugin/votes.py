"""Annotations to votes to one correction per task: the pure part of ``relabeler pull``.

Each annotator's latest annotation is one vote; the majority wins; a tie is marked
``needs_review`` and counts as "unsure". Skips and "Not sure" give ``unsure``, "Drop" gives
``drop``, the given label ``keep``, another class ``relabel``. An answer that maps to none of
these raises :class:`UnmappedAnswer`, which pull turns into a ``labels/unmapped.parquet`` row.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import pandas as pd

from relabeler.corrections import DROP_ACTION, KEEP, RELABEL, UNSURE
from relabeler.plugin.labeling import DROP, NOT_SURE, LabelingSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Vote:
    """One annotator's latest answer to one task."""

    annotator: str
    answer: str | None        # a class, NOT_SURE or DROP; None = skipped
    annotation_id: int
    updated_at: str
    comment: str | None = None


@dataclass(frozen=True)
class Resolution:
    action: str
    new_label: str | None
    agreement: float | None
    needs_review: bool
    n_votes: int
    n_skipped: int


class UnmappedAnswer(ValueError):
    """An annotation whose answer cannot be mapped to a class, Not sure or Drop."""


def _annotator(annotation: Mapping[str, Any], user_names: Mapping[int, str]) -> str:
    """The annotator's name (``user:<id>`` for a user not listed). An annotation whose user
    was deleted in Label Studio has no ``completed_by``: it is its own annotator,
    ``deleted:<annotation id>`` (one vote each: two deleted users are not one person)."""
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        who = who.get("id")
    if who is None:
        name = f"deleted:{annotation.get('id')}"
        log.info("pull: annotation %s has no annotator (its user was deleted in Label "
                 "Studio): counted as annotator %r", annotation.get("id"), name)
        return name
    return user_names.get(int(who), f"user:{who}")


def _answer_and_comment(annotation: Mapping[str, Any], spec: LabelingSpec
                        ) -> tuple[str | None, str | None]:
    answer = comment = None
    for region in annotation.get("result") or []:
        if region.get("from_name") == spec.answer_name:
            choices = (region.get("value") or {}).get("choices") or []
            if len(choices) != 1:
                raise UnmappedAnswer(f"expected one answer, got {choices!r}")
            answer = str(choices[0])
        elif spec.comment_name and region.get("from_name") == spec.comment_name:
            texts = (region.get("value") or {}).get("text") or []
            comment = " ".join(str(t) for t in texts).strip() or None
    return answer, comment


def annotation_vote(annotation: Mapping[str, Any], spec: LabelingSpec,
                    user_names: Mapping[int, str]) -> Vote:
    """The vote of one annotation. Raises UnmappedAnswer for a missing or unknown answer."""
    answer, comment = _answer_and_comment(annotation, spec)
    updated_at = annotation.get("updated_at") or annotation.get("created_at") or ""
    common = {"annotator": _annotator(annotation, user_names),
              "annotation_id": int(annotation["id"]), "updated_at": str(updated_at),
              "comment": comment}
    if annotation.get("was_cancelled"):
        return Vote(answer=None, **common)
    if answer is None:
        raise UnmappedAnswer("the annotation has no answer")
    if answer not in spec.classes and answer not in (NOT_SURE, DROP):
        raise UnmappedAnswer(f"answer {answer!r} is not a class of the run "
                             f"({list(spec.classes)}), {NOT_SURE!r} or {DROP!r}")
    return Vote(answer=answer, **common)


#: the ``origin`` Label Studio gives a region an annotator drew, or changed from a prediction's
_EDITED_ORIGINS = ("manual", "prediction-changed")


def _evidence(result: Sequence[Mapping[str, Any]] | None, spec: LabelingSpec
              ) -> Counter[tuple[Any, Any, tuple[str, ...]]]:
    """The evidence regions of a result: (start, end, labels), as many as there are."""
    return Counter(((r.get("value") or {}).get("start"), (r.get("value") or {}).get("end"),
                    tuple(map(str, (r.get("value") or {}).get("labels") or [])))
                   for r in result or [] if r.get("from_name") == spec.evidence_name)


def evidence_edited(annotation: Mapping[str, Any], spec: LabelingSpec,
                    predictions: Sequence[Mapping[str, Any]] = ()) -> bool:
    """Whether an answer's evidence regions are not the ones the model's prediction showed: a
    region drawn or changed in the page (Label Studio's ``origin`` says so), or, for an answer
    made from one of ``predictions`` (its ``parent_prediction``), regions added, moved or
    deleted. Pull reads only the answer and the comment; the regions are the model's evidence.
    A skip is not an answer, and an annotation made without a prediction (through the API)
    has only its origins to tell."""
    if annotation.get("was_cancelled"):
        return False
    result = annotation.get("result") or []
    if any(r.get("from_name") == spec.evidence_name and r.get("origin") in _EDITED_ORIGINS
           for r in result):
        return True
    parent = annotation.get("parent_prediction")
    if isinstance(parent, Mapping):
        parent = parent.get("id")
    shown = next((p for p in predictions if parent is not None and p.get("id") == parent), None)
    return shown is not None and _evidence(result, spec) != _evidence(shown.get("result"), spec)


def latest_per_annotator(votes: Sequence[Vote]) -> list[Vote]:
    latest: dict[str, Vote] = {}
    for vote in sorted(votes, key=lambda v: (v.updated_at, v.annotation_id)):
        latest[vote.annotator] = vote
    return sorted(latest.values(), key=lambda v: v.annotator)


def resolve(votes: Sequence[Vote], *, given_label: str | None) -> Resolution:
    """Majority of the answers (one per annotator; skips are not votes); ties need review."""
    answers = [v.answer for v in votes if v.answer is not None]
    skipped = sum(v.answer is None for v in votes)
    if not answers:
        return Resolution(UNSURE, None, None, False, 0, skipped)
    counts = Counter(answers).most_common()
    top, top_count = counts[0]
    agreement = top_count / len(answers)
    if len(counts) > 1 and counts[1][1] == top_count:
        return Resolution(UNSURE, None, agreement, True, len(answers), skipped)
    if top == NOT_SURE:
        return Resolution(UNSURE, None, agreement, False, len(answers), skipped)
    if top == DROP:
        return Resolution(DROP_ACTION, None, agreement, False, len(answers), skipped)
    action = KEEP if top == given_label else RELABEL
    return Resolution(action, top, agreement, False, len(answers), skipped)


def _keys(annotations: Sequence[Mapping[str, Any]]) -> list[Any]:
    return sorted((int(a["id"]), str(a.get("updated_at")), bool(a.get("was_cancelled")))
                  for a in annotations)


def fingerprint(annotations: Sequence[Mapping[str, Any]], deleted: Sequence[int] = (),
                unconfirmed: Sequence[Mapping[str, Any]] = (),
                classes: Sequence[str] = ()) -> str:
    """Changes when an annotation is added, changed or removed, a deletion is recorded, one
    moves between the answers and the ``unconfirmed`` ones set aside (the server showing an
    answer only events knew of), or the ``classes`` the answers are read against change."""
    keys = _keys(annotations)
    if classes:
        keys.append(["classes", list(classes)])
    if deleted:
        keys.append(["deleted", sorted(int(i) for i in deleted)])
    if unconfirmed:
        keys.append(["unconfirmed", _keys(unconfirmed)])
    return hashlib.sha1(json.dumps(keys).encode()).hexdigest()


def unmapped_row(project_id: int, task_id: int, sample_id: str | None, reason: str,
                 annotation: Mapping[str, Any]) -> dict[str, Any]:
    """One row of ``labels/unmapped.parquet``: an annotation set aside, with the reason."""
    return {"project_id": project_id, "task_id": task_id,
            "annotation_id": int(annotation["id"]), "id": sample_id, "reason": reason,
            "annotation": json.dumps(annotation, default=str)}


def task_votes(annotations: Sequence[Mapping[str, Any]], spec: LabelingSpec,
               user_names: Mapping[int, str], *, sample_id: str | None, project_id: int,
               task_id: int) -> tuple[list[Vote], list[dict[str, Any]]]:
    """The latest vote per annotator, and an ``unmapped`` row for each annotation without one
    (an earlier answer of an annotator who answered the task again is one: superseded)."""
    votes: list[Vote] = []
    unmapped = []
    shown = {int(a["id"]): a for a in annotations}

    def set_aside(annotation_id: int, reason: str) -> None:
        unmapped.append(unmapped_row(project_id, task_id, sample_id, reason,
                                     shown[annotation_id]))

    for annotation in annotations:
        try:
            if sample_id is None:
                raise UnmappedAnswer("the task is not in this run's manifest (no sample_id, "
                                     "or another run's task in the same project)")
            votes.append(annotation_vote(annotation, spec, user_names))
        except UnmappedAnswer as exc:
            set_aside(int(annotation["id"]), str(exc))
            log.warning("pull: task %d annotation %s cannot be mapped: %s", task_id,
                        annotation.get("id"), exc)
    latest = latest_per_annotator(votes)
    vote_of = {v.annotator: v.annotation_id for v in latest}
    for vote in votes:
        if vote.annotation_id != vote_of[vote.annotator]:
            set_aside(vote.annotation_id, f"superseded by annotation {vote_of[vote.annotator]}, "
                                          f"a later answer of {vote.annotator} to the task "
                                          f"(an annotator's latest answer is their vote)")
            log.info("pull: task %d: annotation %d of %s is superseded by their later "
                     "annotation %d", task_id, vote.annotation_id, vote.annotator,
                     vote_of[vote.annotator])
    return latest, unmapped


def correction_row(votes: Sequence[Vote], spec: LabelingSpec, *, sample_id: str,
                   given_label: str | None, source: str | None, via: str, project_id: int,
                   task_id: int) -> dict[str, Any]:
    """One row of ``labels/corrections.parquet`` from a task's votes (at least one)."""
    res = resolve(votes, given_label=given_label)
    return {
        "id": sample_id, "old_label": given_label, "new_label": res.new_label,
        "action": res.action, "annotators": [v.annotator for v in votes],
        "n_annotations": len(votes), "agreement": res.agreement,
        "updated_at": _timestamp(max(v.updated_at for v in votes)),
        "source": source, "needs_review": res.needs_review, "n_skipped": res.n_skipped,
        "votes": [f"{v.annotator}: {v.answer if v.answer is not None else '(skipped)'}"
                  for v in votes],
        "comments": [f"{v.annotator}: {v.comment}" for v in votes if v.comment],
        "annotation_ids": [v.annotation_id for v in votes],
        "project_id": project_id, "task_id": task_id, "via": via}


def _timestamp(text: str | None) -> pd.Timestamp | None:
    if not text:
        return None
    stamp = pd.Timestamp(text)
    return stamp.tz_convert(UTC) if stamp.tzinfo else stamp.tz_localize(UTC)
