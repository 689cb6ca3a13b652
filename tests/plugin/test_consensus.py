"""Several annotators resolved with the model's help (Dawid-Skene, CROWDLAB) against plain
majority."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from relabeler.corrections import CORRECTIONS
from relabeler.plugin.consensus import resolve_with_model, vote_answers
from relabeler.plugin.labeling import DROP, NOT_SURE
from relabeler.plugin.pull import pull
from relabeler.plugin.votes import Vote, resolve
from relabeler.queue_plan import MANIFEST_SCHEMA, write_manifest
from relabeler.store import RunStore
from tests.plugin.fake_studio import FakeStudio

ACCURACIES = {"careful@x": 0.95, "steady@x": 0.8, "tired@x": 0.65}


def crowd(seed: int, n: int = 400, k: int = 3):
    """Tasks with model probabilities and three annotators of the accuracies above; a mistake
    picks the wrong class the model finds most plausible, as tired people do."""
    rng = np.random.default_rng(seed)
    classes = [f"c{i}" for i in range(k)]
    truth = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), truth] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    plausible = probs.copy()
    plausible[np.arange(n), truth] = -1
    wrong = plausible.argmax(axis=1)
    given = rng.integers(0, k, n)
    rows = []
    for i in range(n):
        votes = [Vote(who, classes[truth[i] if rng.random() < acc else wrong[i]], i * 3 + j,
                      "2026-12-05T00:00:00Z") for j, (who, acc) in enumerate(ACCURACIES.items())]
        res = resolve(votes, given_label=classes[given[i]])
        rows.append({"id": f"s{i}", "old_label": classes[given[i]], "new_label": res.new_label,
                     "action": res.action, "agreement": res.agreement,
                     "needs_review": res.needs_review,
                     "annotators": [v.annotator for v in votes],
                     "votes": [f"{v.annotator}: {v.answer}" for v in votes]})
    frame = pd.DataFrame(rows)
    return frame, {f"s{i}": probs[i] for i in range(n)}, classes, truth


def overruled(frame: pd.DataFrame, resolved: pd.DataFrame, classes, truth) -> np.ndarray:
    """The tasks whose resolved class had fewer answers than another class; checks on the way
    that the weights were right on them more often than the annotators' majority."""
    flags = []
    for votes, new in zip(frame["votes"], resolved["new_label"], strict=True):
        counts = Counter(v.split(": ", 1)[1] for v in votes)
        flags.append(max(counts.values()) > counts.get(new, 0))
    flags = np.array(flags)
    assert flags.any()
    right = np.array([classes[t] for t in truth])[flags]
    majority = frame["new_label"].where(frame["action"] != "keep", frame["old_label"])
    resolved_labels = resolved["new_label"].to_numpy()[flags]
    assert np.mean(resolved_labels == right) > np.mean(majority.to_numpy()[flags] == right)
    return flags


def accuracy(frame: pd.DataFrame, classes, truth) -> float:
    labels = frame["new_label"].where(frame["action"] != "keep", frame["old_label"])
    return float(np.mean(labels.to_numpy() == np.array([classes[t] for t in truth])))


@pytest.mark.parametrize("method", ["dawid_skene", "crowdlab"])
def test_one_annotators_answers_are_ranked_for_a_second_opinion_by_the_models_doubt(method):
    # with one annotator no annotator model can be fitted, and no task was ranked at all:
    # studio.second_opinions sent nothing, silently, where the docs say lone answers are ranked
    classes = ["ham", "spam"]
    rows = [("a", "ham", "ham", "keep"), ("b", "ham", "spam", "relabel"),
            ("c", "spam", "spam", "keep"), ("d", "spam", DROP, "drop")]
    frame = pd.DataFrame([{"id": i, "old_label": old, "new_label": new, "action": action,
                           "agreement": 1.0, "needs_review": False, "annotators": ["solo@x"],
                           "votes": [f"solo@x: {new}"]} for i, old, new, action in rows])
    probs = {"a": np.array([0.9, 0.1]), "b": np.array([0.6, 0.4]),
             "c": np.array([0.3, 0.7]), "d": np.array([0.5, 0.5])}
    resolved, _ = resolve_with_model(frame, probs, classes, method=method)
    # the model's probability of the answer: a 0.9, b 0.4, c 0.7; d was dropped (not ranked)
    assert resolved.set_index("id")["second_opinion"].to_dict() == {
        "a": 3, "b": 1, "c": 2, "d": None}
    assert resolved["new_label"].tolist()[:3] == ["ham", "spam", "spam"]  # the answers stand
    assert resolved["action"].tolist() == ["keep", "relabel", "keep", "drop"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crowdlab_is_cleanlabs_and_beats_the_majority(seed):
    from cleanlab.multiannotator import get_label_quality_multiannotator

    frame, probs, classes, truth = crowd(seed, k=2)
    resolved, annotators = resolve_with_model(frame, probs, classes, method="crowdlab")
    majority, crowdlab = accuracy(frame, classes, truth), accuracy(resolved, classes, truth)
    assert crowdlab >= majority + 0.02  # +2.25 to +4 points on these seeds
    assert (resolved["consensus"] == "crowdlab").all()
    # ties are broken by the weights; a majority the weights overruled needs review
    assert resolved["needs_review"].tolist() == overruled(frame, resolved, classes,
                                                          truth).tolist()
    # the same answers through cleanlab directly give the same labels
    index = {c: i for i, c in enumerate(classes)}
    wide = pd.DataFrame([[index[vote_answers(a, v)[w]] for w in sorted(ACCURACIES)]
                         for a, v in zip(frame["annotators"], frame["votes"], strict=True)],
                        columns=sorted(ACCURACIES))
    direct = get_label_quality_multiannotator(
        wide, np.stack([probs[f"s{i}"] for i in range(len(frame))]), verbose=False)
    assert resolved["new_label"].tolist() == [classes[c] for c in
                                              direct["label_quality"]["consensus_label"]]
    # ActiveLab's order: the tasks whose answers disagree most come first
    second = resolved["second_opinion"].to_numpy(dtype=int)
    assert sorted(second) == list(range(1, len(frame) + 1))
    unanimous = resolved["agreement"] == 1.0
    assert second[~unanimous.to_numpy()].mean() < second[unanimous.to_numpy()].mean()
    quality = annotators.set_index("annotator")["quality"]
    assert quality["careful@x"] > quality["steady@x"] > quality["tired@x"]
    assert annotators["answers"].tolist() == [len(frame)] * 3
    assert annotators["estimated_accuracy"].isna().all()


@pytest.mark.parametrize("k", [2, 3, 5])
def test_dawid_skene_beats_the_majority_and_crowdlab_and_estimates_each_accuracy(k):
    frame, probs, classes, truth = crowd(0, k=k)
    resolved, annotators = resolve_with_model(frame, probs, classes)
    crowdlab, _ = resolve_with_model(frame, probs, classes, method="crowdlab")
    majority = accuracy(frame, classes, truth)
    ours = accuracy(resolved, classes, truth)
    # seed 0: majority .913/.935/.915, Dawid-Skene .978/.975/.980, CROWDLAB .953/.948/.933
    assert ours >= majority + 0.03
    assert ours >= accuracy(crowdlab, classes, truth)
    assert (resolved["consensus"] == "dawid_skene").all()
    assert resolved["needs_review"].tolist() == overruled(frame, resolved, classes,
                                                          truth).tolist()
    estimated = annotators.set_index("annotator")["estimated_accuracy"]
    for who, true_accuracy in ACCURACIES.items():
        assert abs(estimated[who] - true_accuracy) < 0.05
    assert annotators["quality"].tolist() == annotators["estimated_accuracy"].tolist()
    # agreement with the consensus: the careful annotator agrees most
    agreement = annotators.set_index("annotator")["agreement_with_consensus"]
    assert agreement["careful@x"] > agreement["steady@x"] > agreement["tired@x"]
    # ask again first where the answers split
    second = resolved["second_opinion"].to_numpy(dtype=int)
    assert sorted(second) == list(range(1, len(frame) + 1))
    unanimous = (resolved["agreement"] == 1.0).to_numpy()
    assert second[~unanimous].mean() < second[unanimous].mean()


def test_drop_and_not_sure_majorities_and_unknown_samples_keep_the_majority():
    frame, probs, classes, _ = crowd(3, n=40)
    frame.at[0, "votes"] = [f"{who}: {DROP}" for who in frame.at[0, "annotators"]]
    frame.at[1, "votes"] = [f"{who}: {NOT_SURE}" for who in frame.at[1, "annotators"]]
    del probs["s2"]
    resolved, _ = resolve_with_model(frame, probs, classes)
    assert resolved.loc[0, "action"] == "drop" and resolved.loc[1, "action"] == "unsure"
    assert resolved.loc[:2, "consensus"].tolist() == ["majority"] * 3
    assert resolved.loc[2, "new_label"] == frame.loc[2, "new_label"]


def test_one_annotator_leaves_the_majority_and_no_quality():
    frame, probs, classes, _ = crowd(4, n=20)
    one = frame.assign(annotators=[a[:1] for a in frame["annotators"]],
                       votes=[v[:1] for v in frame["votes"]])
    resolved, annotators = resolve_with_model(one, probs, classes)
    assert (resolved["consensus"] == "majority").all()
    careful = [vote_answers(a, v)["careful@x"] for a, v in zip(one["annotators"], one["votes"],
                                                               strict=True)]
    assert resolved["new_label"].fillna(resolved["old_label"]).tolist() == careful
    assert annotators["annotator"].tolist() == ["careful@x"]
    assert annotators["quality"].isna().all()


def test_pull_writes_the_annotators_and_resolves_with_the_model(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    given = {f"s{i}": "ham" for i in range(6)}
    store.write_table("dataset/train.parquet", pa.table({
        "id": list(given), "text": ["t"] * 6, "label": list(given.values())}))
    store.write_json("model/labels.json", ["ham", "spam"])
    spam_probs = [0.9, 0.9, 0.9, 0.1, 0.1, 0.1]
    store.write_table("train/oof.parquet", pa.table({
        "id": list(given), "fold": [0] * 6,
        "probs": pa.array([[1 - p, p] for p in spam_probs], pa.list_(pa.float32()))}))
    studio = FakeStudio(["ham", "spam"], events_to=store)
    project = studio.add_project()
    tasks = {s: studio.add_task(project, s, label) for s, label in given.items()}
    write_manifest(store, pd.DataFrame({
        "id": list(tasks), "task_id": list(tasks.values()), "project_id": project,
        "rank": range(1, 7), "priority": range(1, 7), "source": "flagged",
        "pushed_at": pd.Timestamp("2026-01-01", tz="UTC")})[MANIFEST_SCHEMA.names])
    # user 1 agrees with the model everywhere, user 2 says the opposite: a tie each time
    for i, task in enumerate(tasks.values()):
        studio.annotate(task, "spam" if spam_probs[i] > 0.5 else "ham", user=1)
        studio.annotate(task, "ham" if spam_probs[i] > 0.5 else "spam", user=2)
    pull(store, studio)
    rows = {r["id"]: r for r in store.read_table(CORRECTIONS).to_pylist()}
    assert [rows[s]["new_label"] for s in given] == ["spam"] * 3 + ["ham"] * 3
    assert all(rows[s]["consensus"] == "dawid_skene" and not rows[s]["needs_review"]
               for s in given)
    annotators = store.read_table("labels/annotators.parquet").to_pandas()
    assert annotators["answers"].tolist() == [6, 6]
    # the model breaks the tie: user 1 is right everywhere, user 2 nowhere
    assert annotators["agreement_with_consensus"].tolist() == [1.0, 0.0]
    assert annotators["estimated_accuracy"].iloc[0] > 0.7 > annotators[
        "estimated_accuracy"].iloc[1]
    pull(store, studio, consensus="crowdlab")  # nothing new to fetch; resolved again
    rows = {r["id"]: r for r in store.read_table(CORRECTIONS).to_pylist()}
    assert [rows[s]["new_label"] for s in given] == ["spam"] * 3 + ["ham"] * 3
    assert all(rows[s]["consensus"] == "crowdlab" for s in given)
    pull(store, studio, consensus="majority")  # nothing new to fetch; resolved again
    rows = {r["id"]: r for r in store.read_table(CORRECTIONS).to_pylist()}
    assert all(rows[s]["needs_review"] and rows[s]["consensus"] == "majority" for s in given)


def test_strata_of_enough_tasks_get_their_own_group_and_small_ones_share_one():
    from relabeler.plugin.consensus import MIN_STRATUM, _groups

    keys = ([("flagged", 1)] * MIN_STRATUM + [("flagged", 2)] * (MIN_STRATUM + 5)
            + [("random_control", 1)] * 3 + [None] * 2)
    groups = _groups(keys)
    assert sorted(set(groups.tolist())) == [0, 1, 2]
    first, second, rest = groups[0], groups[MIN_STRATUM], groups[-1]
    assert len({first, second, rest}) == 3
    assert (groups[-5:] == rest).all() and (groups[:MIN_STRATUM] == first).all()
    assert _groups([None] * 4).tolist() == [0, 0, 0, 0]


def _answers(rows, classes):
    """A corrections frame from (id, old label, {annotator: answer}) rows, resolved by
    majority as pull resolves them first."""
    out = []
    for sid, old, given in rows:
        votes = [Vote(who, answer, i, "2026-12-06T00:00:00Z")
                 for i, (who, answer) in enumerate(given.items())]
        res = resolve(votes, given_label=old)
        out.append({"id": sid, "old_label": old, "new_label": res.new_label,
                    "action": res.action, "agreement": res.agreement,
                    "needs_review": res.needs_review, "annotators": list(given),
                    "votes": [f"{w}: {a}" for w, a in given.items()]})
    return pd.DataFrame(out)


@pytest.mark.parametrize("method", ["dawid_skene", "crowdlab"])
def test_a_lone_answer_stands_against_a_confident_model(method, caplog):
    # overlap 1 (the default): each task answered once, by one of two careful annotators who
    # correct labels the model (trained on them) still believes
    classes = ["neg", "pos"]
    rows = [(f"s{i}", "neg", {("ann@a" if i % 2 else "ann@b"): "pos"}) for i in range(40)]
    rows += [(f"k{i}", "neg", {("ann@a" if i % 2 else "ann@b"): "neg"}) for i in range(40)]
    frame = _answers(rows, classes)
    probs = {sid: np.array([0.97, 0.03]) for sid, _, _ in rows}
    with caplog.at_level("INFO", logger="relabeler.plugin.consensus"):
        resolved, annotators = resolve_with_model(frame, probs, classes, method=method)
    # the fit that only ranks tasks for a second opinion logs no accuracies the pull never used
    assert not [m for m in caplog.messages if "accuracy" in m]
    assert (resolved["new_label"].iloc[:40] == "pos").all()  # the people's answers
    assert (resolved["action"].iloc[:40] == "relabel").all()
    assert (resolved["consensus"] == "majority").all()
    assert annotators["estimated_accuracy"].isna().all() and annotators["quality"].isna().all()
    if method == "dawid_skene":  # every task still ranked for a second opinion
        ranks = resolved["second_opinion"].astype(int)
        assert sorted(ranks) == list(range(1, 81))
        assert ranks.iloc[:40].max() < ranks.iloc[40:].min()  # the model doubts these most


def test_drop_or_not_sure_beside_a_class_keeps_the_task_in_review():
    classes = ["neg", "pos"]
    frame = _answers([("a", "neg", {"x@a": DROP, "y@a": "pos"}),
                      ("b", "neg", {"x@a": NOT_SURE, "y@a": "pos", "z@a": "neg"}),
                      ("c", "neg", {"x@a": "pos", "y@a": "pos", "z@a": "neg"}),
                      ("d", "pos", {"x@a": "pos", "y@a": "neg", "z@a": "pos"})], classes)
    probs = {s: np.array([0.5, 0.5]) for s in "abcd"}
    resolved = resolve_with_model(frame, probs, classes)[0].set_index("id")
    assert resolved.at["a", "needs_review"] and resolved.at["a", "consensus"] == "majority"
    assert resolved.at["b", "needs_review"] and resolved.at["b", "agreement"] == \
        pytest.approx(1 / 3)
    assert not resolved.at["c", "needs_review"] and resolved.at["c", "new_label"] == "pos"


def test_one_drop_beside_a_clear_majority_needs_no_review_but_at_half_it_does():
    classes = ["neg", "pos"]
    frame = _answers([("a", "neg", {"w@a": "pos", "x@a": "pos", "y@a": "pos", "z@a": DROP}),
                      ("b", "neg", {"w@a": "pos", "x@a": "pos", "y@a": DROP, "z@a": "neg"}),
                      ("c", "neg", {"w@a": "neg", "x@a": "neg", "y@a": "pos", "z@a": "neg"})],
                     classes)
    probs = {s: np.array([0.5, 0.5]) for s in "abc"}
    resolved = resolve_with_model(frame, probs, classes)[0].set_index("id")
    assert resolved.at["a", "new_label"] == "pos"
    assert resolved.at["a", "agreement"] == pytest.approx(0.75)
    assert not resolved.at["a", "needs_review"]
    assert resolved.at["b", "new_label"] == "pos"
    assert resolved.at["b", "agreement"] == pytest.approx(0.5)
    assert resolved.at["b", "needs_review"]
    assert not resolved.at["c", "needs_review"]
