"""simulate --rounds: splitting the budget, picking each round, the rounds block of
simulation.json, and one small end-to-end run."""

import dataclasses
import json

import numpy as np
import pytest

from relabeler.cli import main
from relabeler.config import ScoreConfig
from relabeler.jobs.score import TrainView, suspect_signals
from relabeler.jobs.simulate import gain_experiment
from relabeler.jobs.simulate_rounds import (
    QueueRescorer,
    RoundsPlay,
    pick_round,
    play_rounds,
    round_controls,
    round_sizes,
    rounds_block,
)
from relabeler.selectors import rank


class CentroidRefitter:
    """A real, deterministic classifier with the refitters' interface: class centroids of the
    training rows' features, probabilities from a softmax of negative squared distances."""

    def __init__(self, features: np.ndarray, n_classes: int):
        self.features, self.n_classes = features, n_classes
        self.fits = 0

    def fit_predict(self, rows, label_ids, predict_rows, *, sample_weights=None):
        self.fits += 1
        x = self.features[rows]
        centroids = np.stack([x[label_ids == c].mean(axis=0) for c in range(self.n_classes)])
        d = ((self.features[predict_rows][:, None, :] - centroids[None]) ** 2).sum(-1)
        e = np.exp(-(d - d.min(axis=1, keepdims=True)))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def world(n_train: int = 60, n_test: int = 40, flips: int = 12, seed: int = 0):
    """Two Gaussian classes; ``flips`` training labels flipped; rows 0..n_train-1 train."""
    rng = np.random.default_rng(seed)
    truth_all = np.arange(n_train + n_test) % 2
    features = rng.normal(size=(n_train + n_test, 2)) + 1.5 * truth_all[:, None]
    truth = truth_all[:n_train]
    noisy = truth.copy()
    flipped = rng.choice(n_train, size=flips, replace=False)
    noisy[flipped] = 1 - noisy[flipped]
    return features, truth, noisy, np.arange(n_train, n_train + n_test), truth_all[n_train:]


def test_round_sizes_add_up_and_spread_the_remainder():
    assert round_sizes(10, 4) == [3, 3, 2, 2]
    assert round_sizes(8, 4) == [2, 2, 2, 2]
    assert round_sizes(5, 1) == [5]
    assert sum(round_sizes(161, 4)) == 161
    with pytest.raises(ValueError, match="rounds: expected an integer >= 1, got 0"):
        round_sizes(10, 0)
    with pytest.raises(ValueError, match="budget of 3 cannot be split into 4 rounds"):
        round_sizes(3, 4)


def test_a_round_takes_the_unreviewed_top_and_controls_from_the_rest():
    suspect = np.array([0.9, 0.1, 0.8, 0.7, 0.2, 0.6, 0.3, 0.5, 0.4, 0.05])
    reviewed = np.zeros(10, dtype=bool)
    reviewed[[0, 2]] = True  # answered in an earlier round: they never return
    rng = np.random.default_rng(0)
    flagged, controls = pick_round(suspect, reviewed, 4, control_share=0.25, rng=rng)
    assert flagged.tolist() == [3, 5, 7]  # 0.7, 0.6, 0.5: the top of what is left
    assert len(controls) == 1
    assert controls[0] not in {0, 2, 3, 5, 7}
    flagged, controls = pick_round(suspect, reviewed, 4, control_share=0.0, rng=rng)
    assert flagged.tolist() == [3, 5, 7, 8] and controls.tolist() == []
    # every row drawn over many rounds' controls: uniform over the rest, never the reviewed
    seen = np.concatenate([pick_round(suspect, reviewed, 4, control_share=0.25,
                                      rng=np.random.default_rng(s))[1] for s in range(200)])
    assert set(seen.tolist()) == {1, 4, 6, 8, 9}


def test_the_rounds_send_as_many_controls_and_flagged_tasks_as_the_one_shot():
    # split_budget per round would round each round's 1.5 controls up to 2 (8 against the one
    # shot's 6), and force 1 into each round of 8 (4 against 2)
    assert round_controls(round_sizes(120, 4), 0.05) == [2, 2, 1, 1]
    assert round_controls(round_sizes(30, 4), 0.05) == [1, 1, 0, 0]
    assert round_controls([5], 0.05) == [1] and round_controls([3, 3], 0.0) == [0, 0]
    assert round_controls(round_sizes(5, 4), 0.9) == [1, 1, 1, 1]  # never above a round's size
    features, truth, noisy, test_rows, test_labels = world(n_train=600, flips=120)
    refit = CentroidRefitter(features, 2)
    ids = np.array([f"r{i}" for i in range(600)], dtype=object)

    def rescore(labels, model_probs):
        return np.where(labels != truth, 1.0, 0.0), None

    for total, flagged in ((120, 114), (30, 28)):
        common = {"ids": ids, "noisy": noisy, "truth": truth, "suspect": np.linspace(1, 0, 600),
                  "test_rows": test_rows, "test_labels": test_labels, "control_share": 0.05,
                  "model_wrong": None, "stop_rate": 0.05}
        sent = {}
        for name, sizes in (("rounds", round_sizes(total, 4)), ("one shot", [total])):
            play = play_rounds(refit, rescore, sizes=sizes, **common)
            sent[name] = [sum(m["source"] == source for m in play.manifest)
                          for source in ("flagged", "random_control")]
        assert sent["rounds"] == sent["one shot"] == [flagged, total - flagged]
    # the first two rounds of the four, as benchmarks/remaining.py replays them
    play = play_rounds(refit, rescore, sizes=[30, 30], controls=[2, 2], **common)
    assert [m["source"] for m in play.manifest].count("random_control") == 4
    with pytest.raises(ValueError, match=r"controls: expected one count in \[0, size\]"):
        play_rounds(refit, rescore, sizes=[30, 30], controls=[31, 2], **common)


def test_the_one_shot_play_without_controls_is_the_gain_experiments_top_k():
    features, truth, noisy, test_rows, test_labels = world()
    refit = CentroidRefitter(features, 2)
    suspect = np.where(noisy != truth, 1.0, 0.0) + np.linspace(0, 0.5, len(noisy))
    gain = gain_experiment(refit, noisy=noisy, truth=truth, test_rows=test_rows,
                           test_labels=test_labels, rankings={"relabeler": suspect},
                           budgets=[0.1], classes=["a", "b"])
    k = gain["budget_samples"][0]
    play = play_rounds(refit, None, ids=np.array([f"r{i}" for i in range(60)], dtype=object),
                       noisy=noisy, truth=truth, suspect=suspect, sizes=[k],
                       test_rows=test_rows, test_labels=test_labels, control_share=0.0,
                       model_wrong=None, stop_rate=0.05)
    assert play.accuracy == [pytest.approx(gain["accuracy"]["relabeler"][0])]
    assert play.found == [6]  # the top 6 are all flipped rows
    assert play.true_remaining == [6]
    assert play.estimated_remaining == [[None, None, None]]  # no controls: no estimate


def test_rounds_re_score_between_rounds_and_estimate_what_is_left():
    features, truth, noisy, test_rows, test_labels = world(n_train=200, flips=60)
    refit = CentroidRefitter(features, 2)
    ids = np.array([f"r{i}" for i in range(200)], dtype=object)
    calls = []

    def rescore(labels, model_probs):
        calls.append(labels.copy())
        # the wrong labels left, first: what a perfect re-scoring would give; its chances
        # that a label is wrong are half what they should be
        return np.where(labels != truth, 1.0, 0.0), np.where(labels != truth, 0.5, 0.0)

    suspect = np.linspace(1, 0, 200)  # a useless first queue: row order
    play = play_rounds(refit, rescore, ids=ids, noisy=noisy, truth=truth, suspect=suspect,
                       sizes=[16, 16, 16], test_rows=test_rows, test_labels=test_labels,
                       control_share=0.25, model_wrong=60.0, stop_rate=0.05, seed=1)
    assert len(calls) == 2  # between rounds only
    first = int(np.sum(noisy[:12] != truth[:12]))  # the top 12 of row order, and 4 controls
    assert play.found[0] >= first
    # after a perfect re-scoring every flagged task is a wrong label
    assert play.found[1] >= 12 and play.found[2] >= 12
    assert play.true_remaining == [60 - sum(play.found[:r + 1]) for r in range(3)]
    for low, mid, high in play.estimated_remaining:
        assert 0 <= low <= mid <= high
    # round 1 (no chances known): the model's estimate less the corrections found, where the
    # controls' interval allows; round 3: the re-scoring's chances, calibrated on round 3's
    # answers (x 2), count exactly the wrong labels left
    low, mid, high = play.estimated_remaining[0]
    assert mid == pytest.approx(min(max(60.0 - play.found[0], low), high))
    low, mid, high = play.estimated_remaining[-1]
    assert mid == pytest.approx(min(max(play.true_remaining[-1], low), high))
    # the re-scoring sees every answer, the controls' included (as `relabeler next` does)
    reviewed = [int(m["id"][1:]) for m in play.manifest if m["round"] < 3]
    expected = noisy.copy()
    expected[reviewed] = truth[reviewed]
    np.testing.assert_array_equal(calls[-1], expected)


def test_controls_stay_controls_and_the_estimate_reads_them_by_cohort():
    features, truth, noisy, test_rows, test_labels = world(flips=20)
    refit = CentroidRefitter(features, 2)
    ids = np.array([f"r{i}" for i in range(60)], dtype=object)

    def rescore(labels, model_probs):
        return np.where(labels != truth, 1.0, 0.0), None  # every wrong label at the top

    play = play_rounds(refit, rescore, ids=ids, noisy=noisy, truth=truth,
                       suspect=np.linspace(1, 0, 60), sizes=[6, 6, 6], test_rows=test_rows,
                       test_labels=test_labels, control_share=0.5, model_wrong=None,
                       stop_rate=0.05, seed=0)
    sent = {int(m["id"][1:]): m for m in play.manifest}
    assert len(play.manifest) == 18 and len(sent) == 18
    # replay the draws: round 1 takes rows 0-2 and three controls; round 2 the top of a queue
    # where every wrong label left scores 1
    rng = np.random.default_rng(0 + 3000)
    reviewed = np.zeros(60, dtype=bool)
    flagged1, controls1 = pick_round(np.linspace(1, 0, 60), reviewed, 6, control_share=0.5,
                                     rng=rng)
    assert flagged1.tolist() == [0, 1, 2]
    assert all(sent[int(c)]["source"] == "random_control" and sent[int(c)]["round"] == 1
               for c in controls1)
    reviewed[np.concatenate([flagged1, controls1])] = True
    labels = noisy.copy()
    labels[flagged1] = truth[flagged1]
    labels[controls1] = truth[controls1]
    flagged2, controls2 = pick_round(np.where(labels != truth, 1.0, 0.0), reviewed, 6,
                                     control_share=0.5, rng=rng)
    assert all(sent[int(c)]["round"] == 2 and sent[int(c)]["source"] == "flagged"
               for c in flagged2)
    assert sum(m["source"] == "random_control" for m in play.manifest) == 9
    # the perfect queue finds 3 wrong labels a round, and the 95% interval of what is left
    # holds the truth in every round (the controls of round 1 stand for rows rounds 2 and 3
    # then took 6 wrong labels out of)
    assert play.found[1] >= 3 and play.found[2] >= 3
    for (low, _, high), truth_left in zip(play.estimated_remaining, play.true_remaining,
                                          strict=True):
        assert low <= truth_left <= high


def test_the_rounds_block_has_the_issues_keys_and_gap_shares():
    rounds = RoundsPlay(found=[30, 20, 10, 5], accuracy=[0.82, 0.86, 0.88, 0.89],
                        estimated_remaining=[[10.0, 40.0, 90.0], [5.0, 20.0, 60.0],
                                             [2.0, 10.0, 40.0], [0.0, 5.0, 30.0]],
                        true_remaining=[38, 18, 8, 3])
    one_shot = RoundsPlay(found=[55], accuracy=[0.86], estimated_remaining=[[1.0, 9.0, 40.0]],
                          true_remaining=[13])
    block = rounds_block(rounds, one_shot, total=70, clean=0.90, noisy=0.80)
    assert set(block) == {"R", "budget_per_round", "round_sizes", "found", "gap_recovered",
                          "one_shot_gap_recovered", "estimated_remaining", "true_remaining"}
    # 70 tasks in 4 rounds: 18, 18, 17, 17 (the budget per round is the largest; not 70 // 4)
    assert block["R"] == 4 and block["budget_per_round"] == 18
    assert block["round_sizes"] == [18, 18, 17, 17]
    assert block["found"] == [30, 20, 10, 5]
    assert block["gap_recovered"] == pytest.approx([0.2, 0.6, 0.8, 0.9])
    assert block["one_shot_gap_recovered"] == pytest.approx(0.6)
    assert block["estimated_remaining"][1] == [5.0, 20.0, 60.0]
    assert block["true_remaining"] == [38, 18, 8, 3]
    json.dumps(block)  # plain JSON types
    flat = rounds_block(rounds, one_shot, total=70, clean=0.80, noisy=0.80)
    assert flat["gap_recovered"] == [None] * 4 and flat["one_shot_gap_recovered"] is None


def _view(noisy: np.ndarray, features: np.ndarray, probs: np.ndarray) -> TrainView:
    n = len(noisy)
    return TrainView(ids=np.array([f"r{i}" for i in range(n)], dtype=object), labels=noisy,
                     features=features.astype(np.float32), probs=probs,
                     pred=probs.argmax(axis=1), classes=["a", "b"], oof_probs=probs.copy(),
                     margins=None)


def test_the_labels_rescorer_is_the_score_stages_ranking_on_the_answered_labels():
    features, truth, noisy, _, _ = world()
    n = len(noisy)
    refit = CentroidRefitter(features, 2)
    probs = refit.fit_predict(np.arange(n), noisy, np.arange(n))
    cfg = ScoreConfig(k=5)
    view = _view(noisy, np.hstack([features[:n], np.ones((n, 1))]), probs)
    rescorer = QueueRescorer(view, cfg, mode="labels")
    signals, distributions, _ = suspect_signals(view, cfg)
    scores, chances = rescorer(noisy)
    np.testing.assert_allclose(scores, rank.combine(signals))
    # the chance that each label is wrong: 1 - the noise-aware posterior of the given label
    posterior = rank.ensemble_posterior(distributions)
    np.testing.assert_allclose(chances, 1.0 - posterior[np.arange(n), noisy], atol=1e-6)
    answered = noisy.copy()
    answered[:30] = truth[:30]
    changed, _ = rescorer(answered)
    assert not np.allclose(changed, rank.combine(signals))
    # the refit mode refits the head once per fold for new out-of-fold probabilities
    refit.fits = 0
    QueueRescorer(view, cfg, mode="refit", refit=refit, folds=3)(answered, probs)
    assert refit.fits == 3
    with pytest.raises(ValueError, match="mode: expected one of"):
        QueueRescorer(view, cfg, mode="full")
    with pytest.raises(ValueError, match="needs a refitter"):
        QueueRescorer(view, cfg, mode="refit")


@pytest.mark.slow
def test_simulate_rounds_writes_the_block(ray_session, tmp_path, synthetic_csv, tiny_bert_dir):
    out = tmp_path / "sim"
    assert main(["simulate", "--data", str(synthetic_csv), "--noise", "0.2", "--seed", "0",
                 "--out", str(out), "--mode", "head", "--folds", "2", "--pool-fraction", "0",
                 "--budgets", "0.2", "--rounds", "2", "--set", f"model.name={tiny_bert_dir}",
                 "--set", "model.max_length=32", "--set", "train.epochs=5",
                 "--set", "score.min_agreement=0", "-q"]) == 0
    result = json.loads((out / "simulation.json").read_text())
    block = result["rounds"]
    flips = result["n_flipped"]
    assert result["gain"]["budget_samples"] == [flips]
    assert block["R"] == 2 and block["budget_per_round"] == -(-flips // 2)
    assert block["round_sizes"] == [-(-flips // 2), flips // 2]
    assert len(block["found"]) == 2 and 0 < sum(block["found"]) <= flips
    assert block["true_remaining"] == [flips - block["found"][0], flips - sum(block["found"])]
    assert len(block["gap_recovered"]) == 2 and len(block["estimated_remaining"]) == 2
    for low, mid, high in block["estimated_remaining"]:
        assert low <= mid <= high
    gap = result["gain"]["accuracy"]["clean"] - result["gain"]["accuracy"]["noisy"]
    assert (block["one_shot_gap_recovered"] is None) == (gap <= 0)
    assert result["settings"]["rescore"] == "refit"
    assert "2 rounds of" in (out / "simulation.md").read_text()


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_the_cli_refuses_a_bad_round_count(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--data", "sms-spam", "--noise", "0.1", "--out", str(tmp_path),
              "--rounds", value])
    assert exc.value.code == 2
    assert f"--rounds: expected an integer >= 1; got '{value}'" in capsys.readouterr().err


def test_rounds_without_budgets_is_a_config_error(tmp_path, capsys):
    assert main(["simulate", "--data", "sms-spam", "--noise", "0.1", "--out", str(tmp_path),
                 "--budgets", "none", "--rounds", "2"]) != 0
    assert "--rounds needs --budgets" in capsys.readouterr().err


def test_the_refit_folds_are_the_train_stages_copies_together_classes_spread():
    features, truth, noisy, _, _ = world()
    n = len(noisy)
    refit = CentroidRefitter(features, 2)
    probs = refit.fit_predict(np.arange(n), noisy, np.arange(n))
    texts = [f"text {i}" for i in range(n)]
    texts[1] = texts[7] = texts[13] = "The same text"
    texts[2] = " the  SAME text "  # equal once whitespace and case are normalised
    view = dataclasses.replace(_view(noisy, features[:n], probs), texts=texts)
    rescorer = QueueRescorer(view, ScoreConfig(k=5), mode="refit", refit=refit, folds=3, seed=1)
    assert len(set(rescorer.fold[[1, 2, 7, 13]])) == 1
    for c in (0, 1):  # each class spread evenly over the 3 folds
        sizes = np.bincount(rescorer.fold[noisy == c], minlength=3)
        assert sizes.max() - sizes.min() <= 4


def test_the_refit_folds_follow_the_smallest_class():
    features, truth, noisy, _, _ = world()
    n = len(noisy)
    refit = CentroidRefitter(features, 2)
    probs = refit.fit_predict(np.arange(n), noisy, np.arange(n))
    labels = noisy.copy()
    labels[np.flatnonzero(labels == 1)[3:]] = 0  # class 1 keeps 3 rows: 3 folds, not 5
    view = _view(labels, features[:n], probs)
    rescorer = QueueRescorer(view, ScoreConfig(k=5), mode="refit", refit=refit, folds=5)
    assert sorted(set(rescorer.fold)) == [0, 1, 2]
    assert sorted(rescorer.fold[labels == 1]) == [0, 1, 2]
    labels[np.flatnonzero(labels == 1)[1:]] = 0  # one row: no fold can hold it out and train
    one = QueueRescorer(_view(labels, features[:n], probs), ScoreConfig(k=5), mode="refit",
                        refit=refit, folds=0)
    assert sorted(set(one.fold)) == [0, 1]
