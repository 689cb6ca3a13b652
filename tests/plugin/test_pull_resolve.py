import pytest

from relabeler.plugin.labeling import DROP, NOT_SURE, LabelingSpec
from relabeler.plugin.votes import (
    UnmappedAnswer,
    Vote,
    annotation_vote,
    fingerprint,
    latest_per_annotator,
    resolve,
)

SPEC = LabelingSpec.for_classes(["ham", "spam"])


def votes(*answers):
    return [Vote(f"user{i}", a, i, f"2026-01-01T00:00:0{i}Z") for i, a in enumerate(answers)]


@pytest.mark.parametrize("answers, action, new_label, agreement, review", [
    (["spam"], "relabel", "spam", 1.0, False),
    (["ham"], "keep", "ham", 1.0, False),
    ([DROP], "drop", None, 1.0, False),
    ([NOT_SURE], "unsure", None, 1.0, False),
    ([None], "unsure", None, None, False),
    (["spam", "ham"], "unsure", None, 0.5, True),
    (["spam", "spam", "ham"], "relabel", "spam", 2 / 3, False),
    (["spam", None], "relabel", "spam", 1.0, False),
    ([DROP, "ham", DROP], "drop", None, 2 / 3, False),
])
def test_majority_resolution(answers, action, new_label, agreement, review):
    res = resolve(votes(*answers), given_label="ham")
    assert (res.action, res.new_label, res.needs_review) == (action, new_label, review)
    assert res.agreement == pytest.approx(agreement) if agreement is not None \
        else res.agreement is None
    assert res.n_skipped == sum(a is None for a in answers)


def test_an_unlabeled_pool_sample_gets_a_label():
    res = resolve(votes("spam"), given_label=None)
    assert (res.action, res.new_label) == ("relabel", "spam")


def annotation(choice=None, *, cancelled=False, comment=None, aid=1, user=4):
    result = []
    if choice is not None:
        result.append({"from_name": "answer", "to_name": "text", "type": "choices",
                       "value": {"choices": [choice]}})
    if comment:
        result.append({"from_name": "comment", "to_name": "text", "type": "textarea",
                       "value": {"text": [comment]}})
    return {"id": aid, "completed_by": user, "result": result, "was_cancelled": cancelled,
            "updated_at": "2026-01-01T00:00:00Z"}


def test_annotation_vote_reads_answer_comment_and_annotator():
    vote = annotation_vote(annotation("spam", comment="clearly an ad"), SPEC, {4: "a@x"})
    assert (vote.annotator, vote.answer, vote.comment) == ("a@x", "spam", "clearly an ad")


def test_a_skip_is_a_vote_of_nothing():
    assert annotation_vote(annotation(cancelled=True), SPEC, {}).answer is None


@pytest.mark.parametrize("ann, match", [(annotation("eggs"), "not a class"),
                                        (annotation(None), "no answer")])
def test_unmappable_answers_raise(ann, match):
    with pytest.raises(UnmappedAnswer, match=match):
        annotation_vote(ann, SPEC, {})


def test_latest_answer_per_annotator_counts_once():
    early = Vote("a", "ham", 1, "2026-01-01T00:00:00Z")
    late = Vote("a", "spam", 2, "2026-01-02T00:00:00Z")
    assert latest_per_annotator([late, early]) == [late]


def test_fingerprint_changes_with_any_annotation_change():
    a = [annotation("ham", aid=1)]
    b = [{**a[0], "updated_at": "2026-01-02T00:00:00Z"}]
    assert fingerprint(a) == fingerprint(list(a))
    assert len({fingerprint(a), fingerprint(b), fingerprint([])}) == 3


def test_annotations_of_deleted_users_are_one_vote_each(caplog):
    caplog.set_level("INFO", logger="relabeler.plugin.votes")
    import numpy as np
    import pandas as pd

    from relabeler.plugin.consensus import resolve_with_model
    from relabeler.plugin.votes import correction_row, task_votes

    # Label Studio nulls completed_by when a user is deleted
    anns = [{**annotation("spam", aid=1, user=None), "updated_at": "2026-01-01T00:00:01Z"},
            {**annotation("spam", aid=2, user=None), "updated_at": "2026-01-01T00:00:02Z"},
            {**annotation("ham", aid=3, user=7), "updated_at": "2026-01-01T00:00:03Z"}]
    found, unmapped = task_votes(anns, SPEC, {7: "carol@x"}, sample_id="s1", project_id=1,
                                 task_id=10)
    assert unmapped == []
    assert sorted((v.annotator, v.answer) for v in found) == [
        ("carol@x", "ham"), ("deleted:1", "spam"), ("deleted:2", "spam")]
    assert "annotation 1 has no annotator" in caplog.text
    row = correction_row(found, SPEC, sample_id="s1", given_label="ham", source="flagged",
                         via="export", project_id=1, task_id=10)
    assert (row["action"], row["new_label"], row["needs_review"], row["n_annotations"]) == (
        "relabel", "spam", False, 3)
    # the consensus and annotators.parquet take them as annotators of one answer each
    more, _ = task_votes([annotation("ham", aid=4, user=None), annotation("ham", aid=5, user=7)],
                         SPEC, {7: "carol@x"}, sample_id="s2", project_id=1, task_id=11)
    other = correction_row(more, SPEC, sample_id="s2", given_label="ham", source="flagged",
                           via="export", project_id=1, task_id=11)
    frame = pd.DataFrame([row, other])
    probs = {"s1": np.array([0.3, 0.7]), "s2": np.array([0.6, 0.4])}
    for method in ("dawid_skene", "crowdlab"):
        resolved, annotators = resolve_with_model(frame, probs, ["ham", "spam"],
                                                  method=method)
        assert list(annotators["annotator"]) == ["carol@x", "deleted:1", "deleted:2",
                                                 "deleted:4"]
        assert list(annotators["answers"]) == [2, 1, 1, 1]
        assert resolved.loc[0, "new_label"] == "spam"
