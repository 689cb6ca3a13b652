"""Second opinions: one more answer where it is most likely to change the resolved label.

Raising the review project's ``maximum_annotations`` (``studio.overlap``) would ask every task
again; a task's own ``overlap`` field was not tried. A project apart leaves the review queue
and its counts as they are: after a pull, the answered training tasks ranked first by
``second_opinion`` (:mod:`relabeler.plugin.consensus`: the chance that one more answer changes
the resolved label) go to '<title> (second opinion)', built like the review tasks, until that
project holds ``studio.second_opinions`` tasks (0 = off). Idempotent: the manifest records
them (source ``second_opinion``) and a sample is asked again at most once. ``relabeler pull``
records them under the latest round the manifest holds; ``relabeler next`` sends them after
its round's push, only when there were new answers, and records its round. Either way a task
shows the run's own suggestion and evidence (its data names round 1), never those of a version
trained on the answer asked about.

The next pull folds a second-opinion task's answers into the same sample's resolution
(:func:`fold_second_opinions`): its votes join the review task's votes and the consensus
resolves them together. The second-opinion tasks' own rows are kept in
``labels/second_opinions.parquet``, so folding can be redone from the answers at every pull
without counting an answer twice.

Label Studio Community cannot keep a task from an annotator, so the second-opinion task may go
to someone who answered the sample's review task already. One vote per annotator: their second
answer, asked after the first was pulled, is their vote, and the first is :class:`Superseded`
(pull writes it to ``labels/unmapped.parquet`` and marks the sample ``needs_review``: no second
opinion was obtained, and a sample is asked again at most once). The pull state keeps these, so
a later pull that no longer sees the second answer (deleted) gives the first its vote back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from relabeler.corrections import CORRECTIONS
from relabeler.plugin.client import StudioClient
from relabeler.plugin.evidence import RunEvidence
from relabeler.plugin.labeling import LabelingSpec, build_labeling_config
from relabeler.plugin.projects import TITLE_LIMIT
from relabeler.plugin.push import _push_side_project
from relabeler.queue_plan import (
    CONTROL,
    FLAGGED,
    SECOND_OPINION,
    holds_manifest,
    read_manifest,
    write_manifest,
)
from relabeler.store import RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Superseded:
    """One of an annotator's two answers to a sample, in its review task and its second-opinion
    task, set aside for the later one: their answer ``annotation_id`` (``vote``, as the row
    held it) in task ``task_id`` of project ``project_id`` to sample ``sample_id``, superseded
    by their annotation ``by`` in task ``by_task`` (the second-opinion task, or with
    ``by_review`` the review task)."""

    sample_id: str
    project_id: int
    task_id: int
    annotation_id: int
    annotator: str
    vote: str
    by: int
    by_task: int
    # the later answer is in the review task (the second opinion came first): the superseded
    # one is then the second-opinion task's
    by_review: bool = False

    @property
    def reason(self) -> str:
        """Its reason in ``labels/unmapped.parquet`` (it starts as a superseded answer's in one
        task does)."""
        where = "review" if self.by_review else "second-opinion"
        return (f"superseded by annotation {self.by}, a later answer of {self.annotator} to the "
                f"same sample in the {where} task {self.by_task} (an annotator's latest "
                f"answer is their vote; Label Studio Community serves a second-opinion task to "
                f"anyone, so no other annotator's answer was obtained: the sample needs review)")


@dataclass(frozen=True)
class SecondOpinionResult:
    project_id: int | None  # None: nothing to ask and no project yet
    new: int                # tasks sent by this call
    total: int              # tasks the project holds


def second_opinion_title(title: str) -> str:
    suffix = " (second opinion)"
    return title[: TITLE_LIMIT - len(suffix)] + suffix


def second_opinion_picks(corrections: pd.DataFrame, manifest: pd.DataFrame, *, count: int
                         ) -> pd.DataFrame:
    """The training samples to ask again (columns id, source, position, rank), topping the
    second-opinion project up to ``count`` tasks: the review answers (flagged or control)
    with the best ``second_opinion`` rank that were not asked again yet. ``position`` follows
    the tasks already sent."""
    if count < 0:
        raise ValueError(f"second_opinions must be >= 0, got {count}")
    asked = manifest.loc[manifest["source"] == SECOND_OPINION]
    room = count - len(asked)
    empty = pd.DataFrame({"id": pd.Series([], dtype=object), "source": SECOND_OPINION,
                          "position": pd.Series([], dtype=np.int64),
                          "rank": pd.array([], dtype="Int64")})
    if room <= 0 or not len(corrections) or "second_opinion" not in corrections.columns:
        return empty
    ranked = corrections[corrections["second_opinion"].notna()
                         & corrections["source"].isin([FLAGGED, CONTROL])
                         & ~corrections["id"].isin(set(asked["id"]))]
    ranked = ranked.sort_values(["second_opinion", "id"], kind="stable").head(room)
    start = int(asked["priority"].max()) if len(asked) else 0
    return pd.DataFrame({"id": list(ranked["id"]), "source": SECOND_OPINION,
                         "position": np.arange(start + 1, start + 1 + len(ranked),
                                               dtype=np.int64),
                         "rank": pd.array(ranked["second_opinion"], dtype="Int64")})


@holds_manifest
def push_second_opinions(store: RunStore, client: StudioClient, *, project_title: str,
                         count: int, examples: int = 3, overlap: int = 1, top_spans: int = 3,
                         batch_size: int = 500, progress: bool = False,
                         round_no: int | None = None) -> SecondOpinionResult:
    """Send the picks of :func:`second_opinion_picks` to '<title> (second opinion)'; the
    manifest records them as sent by round ``round_no`` (``relabeler next``: its round; a
    plain ``pull``: the latest round the manifest holds)."""
    manifest = read_manifest(store)
    if round_no is None:
        rounds = manifest["round"].dropna() if "round" in manifest.columns else []
        round_no = int(max(rounds)) if len(rounds) else 1
    corrections = (store.read_table(CORRECTIONS).to_pandas() if store.exists(CORRECTIONS)
                   else pd.DataFrame())
    picks = second_opinion_picks(corrections, manifest, count=count)
    known = manifest.loc[manifest["source"] == SECOND_OPINION, "project_id"]
    if not len(picks):
        total = len(known)
        log.info("second opinions: no task to add (%d sent of studio.second_opinions = %d; "
                 "the rest of the answered tasks are asked already or answered with no class)",
                 total, count)
        return SecondOpinionResult(int(known.iloc[0]) if total else None, 0, total)
    evidence = RunEvidence.load(store, examples=examples, needed_by="second opinions")
    spec = LabelingSpec.from_config(build_labeling_config(evidence.classes))
    manifest, project_id, new = _push_side_project(
        client, store, manifest, picks, SECOND_OPINION, second_opinion_title(project_title),
        evidence.train_samples, spec=spec, overlap=overlap, top_spans=top_spans,
        batch_size=batch_size, progress=progress, round_no=round_no,
        way_out="To go on without second opinions (pull and next send them), set "
                "studio.second_opinions = 0 (--set studio.second_opinions=0)")
    write_manifest(store, manifest)
    total = int((manifest["source"] == SECOND_OPINION).sum())
    log.info("second opinions: %d tasks new in project %d (%d in all)", new, project_id, total)
    return SecondOpinionResult(project_id, new, total)


def fold_second_opinions(corrections: pd.DataFrame, second: pd.DataFrame,
                         *, earlier: pd.DataFrame, restore: Sequence[Superseded] = ()
                         ) -> tuple[pd.DataFrame, list[Superseded]]:
    """``corrections`` with each second-opinion row's votes joined to its sample's row, and
    the review votes those replaced (an annotator who answered both tasks).

    second: this pull's second-opinion rows (one per task). earlier: those of the previous
    pull: their votes are taken out first (by annotation id), so a vote is never counted twice
    and a deleted second answer leaves. restore: the votes the previous pull found superseded,
    of review rows this pull did not recompute (those rows lack them): each goes back into its
    row where the annotator has no vote there, so a deleted second answer gives the first its
    vote back. A sample without a review row gets the second-opinion row itself. The resolution
    columns are recomputed by the consensus afterwards.
    """
    out = corrections.copy().reset_index(drop=True)
    drop_ids = {int(a) for frame in (second, earlier) for ids in frame.get(
        "annotation_ids", pd.Series([], dtype=object)) if ids is not None for a in ids}
    for i in range(len(out)):
        if out.at[i, "annotation_ids"] is not None and set(
                int(a) for a in out.at[i, "annotation_ids"]) & drop_ids:
            _set_votes(out, i, _votes_of(out.iloc[i], exclude=drop_ids))
    position = {sample: i for i, sample in enumerate(out["id"])}
    for vote in restore:
        i = position.get(vote.sample_id)
        if i is None or (out.at[i, "project_id"], out.at[i, "task_id"]) != (
                vote.project_id, vote.task_id):
            continue
        mine = _votes_of(out.iloc[i], exclude=set())
        if vote.annotator not in {who for who, _ in mine}:
            _set_votes(out, i, [*mine, (vote.annotator, (vote.vote, vote.annotation_id))])
    # a row left without votes was a second opinion alone, and its answers are gone
    out = out[[a is not None and len(a) > 0 for a in out["annotators"]]].reset_index(drop=True)
    position = {sample: i for i, sample in enumerate(out["id"])}
    extra, superseded = [], []
    for row in second.itertuples(index=False):
        row = pd.Series(row._asdict())
        if row["id"] in position:
            i = position[row["id"]]
            mine = _votes_of(out.iloc[i], exclude=set())
            theirs = _votes_of(row, exclude=set())
            # one vote per annotator: their later answer (Label Studio numbers annotations in
            # the order they are made), whichever of the two tasks it is in
            merged = dict(mine)
            review_task, second_task = int(out.at[i, "task_id"]), int(row["task_id"])
            for who, (vote, aid) in theirs:
                if who not in merged:
                    merged[who] = (vote, aid)
                    continue
                held, held_aid = merged[who]
                if aid > held_aid:  # the second opinion is the later answer
                    superseded.append(Superseded(
                        str(row["id"]), int(out.at[i, "project_id"]), review_task, held_aid,
                        who, held, aid, second_task))
                    merged[who] = (vote, aid)
                else:  # they answered the review task again after the second opinion
                    superseded.append(Superseded(
                        str(row["id"]), int(row["project_id"]), second_task, aid, who, vote,
                        held_aid, review_task, by_review=True))
            _set_votes(out, i, list(merged.items()))
            if pd.notna(row["updated_at"]) and (pd.isna(out.at[i, "updated_at"])
                                                or row["updated_at"] > out.at[i, "updated_at"]):
                out.at[i, "updated_at"] = row["updated_at"]
        else:
            extra.append(row)
    if extra:
        out = pd.concat([out, pd.DataFrame(extra)], ignore_index=True)
    return out, superseded


def _votes_of(row: pd.Series, *, exclude: set[int]) -> list[tuple[str, tuple[str, int]]]:
    """(annotator, (vote text, annotation id)) of a row, leaving out ``exclude``d ids."""
    if row["annotators"] is None:
        return []
    return [(who, (vote, int(aid))) for who, vote, aid in zip(
        row["annotators"], row["votes"], row["annotation_ids"], strict=True)
        if int(aid) not in exclude]


def _set_votes(frame: pd.DataFrame, i: int, votes: list[tuple[str, Any]]) -> None:
    frame.at[i, "annotators"] = [who for who, _ in votes]
    frame.at[i, "votes"] = [vote for _, (vote, _) in votes]
    frame.at[i, "annotation_ids"] = [aid for _, (_, aid) in votes]
    frame.at[i, "n_annotations"] = len(votes)
    frame.at[i, "n_skipped"] = sum(vote.endswith(": (skipped)") for _, (vote, _) in votes)
