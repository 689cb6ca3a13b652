import json
import warnings

import numpy as np
import pytest
import torch

from relabeler.jobs.folds import stratified_folds
from relabeler.model import load_classifier, load_tokenizer
from relabeler.training import (
    FitOptions,
    classification_metrics,
    encoder_cls,
    fit_full,
    fit_head,
    full_param_groups,
    head_probs,
    predict_probs,
    seed_everything,
)
from tests.conftest import synthetic_frame

CPU = torch.device("cpu")


def _opts(mode, **kw):
    base = dict(mode=mode, epochs=0, batch_size=16, learning_rate=0.0, weight_decay=0.0,
                warmup_ratio=0.0, max_length=48, seed=0, device=CPU, progress=False)
    base.update(kw)
    return FitOptions.resolve(**base)


def test_auto_mode_is_head_on_cpu_and_defaults_fill_in():
    opts = _opts("auto")
    assert opts.mode == "head" and opts.epochs == 40 and opts.learning_rate == 1e-2
    full = _opts("full")
    assert full.epochs == 3 and full.learning_rate == 3e-5 and full.head_learning_rate == 1e-2
    assert _opts("full", head_learning_rate=1e-3).head_learning_rate == 1e-3
    with pytest.raises(ValueError, match="train mode must be"):
        _opts("fast")


def test_full_mode_trains_the_new_head_at_its_own_rate(tiny_bert_dir):
    model = load_classifier(tiny_bert_dir, ["neg", "pos"])
    groups = full_param_groups(model, _opts("full", weight_decay=0.01))
    names = {id(p): n for n, p in model.named_parameters()}
    by_group = [({names[id(p)] for p in g["params"]}, g.get("lr"), g["weight_decay"])
                for g in groups]
    head = [(n, lr, wd) for n, lr, wd in by_group if any(x.startswith("classifier") for x in n)]
    assert head == [({"classifier.weight"}, 1e-2, 0.01), ({"classifier.bias"}, 1e-2, 0.0)]
    body = [g for g in by_group if g not in head]
    assert [lr for _, lr, _ in body] == [None, None]  # the optimizer's learning_rate
    assert sum(len(n) for n, _, _ in by_group) == len(names)
    assert "bert.embeddings.LayerNorm.weight" in body[1][0]


def _data(n=64):
    frame = synthetic_frame(n)
    labels = (frame["label"] == "pos").to_numpy().astype(np.int64)
    return frame["text"].tolist(), labels, frame["id"].to_numpy(dtype=object)


def test_head_fit_records_dynamics_per_epoch_and_learns(tiny_bert_dir):
    texts, labels, ids = _data()
    seed_everything(0)
    model = load_classifier(tiny_bert_dir, ["neg", "pos"])
    tokenizer = load_tokenizer(tiny_bert_dir)
    cls = encoder_cls(model, tokenizer, texts, max_length=48, batch_size=16, device=CPU)
    opts = _opts("head", epochs=30, learning_rate=5e-2)
    dyn = fit_head(model, cls, labels, ids, opts, CPU)
    assert len(dyn) == 30 * len(texts)
    assert sorted(dyn["epoch"].unique().tolist()) == list(range(30))
    assert dyn["gold_prob"].between(0, 1).all()
    first = dyn[dyn.epoch == 0]["gold_prob"].mean()
    last = dyn[dyn.epoch == 29]["gold_prob"].mean()
    assert last > first + 0.1
    # margin = p(gold) - p(other) for two classes = 2 p(gold) - 1
    np.testing.assert_allclose(dyn["margin"], 2 * dyn["gold_prob"] - 1, atol=1e-5)
    # the head was trained in place: head_probs agrees with the last epoch's gold probs
    probs = head_probs(model, cls, CPU)
    np.testing.assert_allclose(probs[np.arange(len(labels)), labels],
                               dyn[dyn.epoch == 29]["gold_prob"], atol=1e-5)


def test_head_fit_only_changes_the_head(tiny_bert_dir):
    texts, labels, ids = _data(32)
    model = load_classifier(tiny_bert_dir, ["neg", "pos"])
    tokenizer = load_tokenizer(tiny_bert_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cls = encoder_cls(model, tokenizer, texts, max_length=48, batch_size=16, device=CPU)
    fit_head(model, cls, labels, ids, _opts("head", epochs=2), CPU)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"classifier.weight", "classifier.bias"}


def test_full_fit_is_seeded_and_reduces_loss(tiny_bert_dir):
    texts, labels, ids = _data(16)
    runs = []
    for _ in range(2):
        seed_everything(0)
        model = load_classifier(tiny_bert_dir, ["neg", "pos"])
        tokenizer = load_tokenizer(tiny_bert_dir)
        dyn = fit_full(model, tokenizer, texts, labels, ids,
                       _opts("full", epochs=15, learning_rate=1e-3, batch_size=8), CPU)
        runs.append(dyn)
    np.testing.assert_allclose(runs[0]["gold_prob"], runs[1]["gold_prob"], atol=1e-6)
    assert len(runs[0]) == 15 * 16
    by_epoch = runs[0].groupby("epoch")["gold_prob"].mean()
    assert by_epoch.iloc[-1] > by_epoch.iloc[0] + 0.3
    probs = predict_probs(model, tokenizer, texts, max_length=48, batch_size=8, device=CPU)
    assert probs.shape == (16, 2)
    assert np.mean(probs.argmax(1) == labels) >= 0.9
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_full_fit_takes_read_only_labels_as_they_come_from_parquet(tiny_bert_dir):
    texts, labels, ids = _data(8)
    labels = labels.copy()
    labels.setflags(write=False)
    model = load_classifier(tiny_bert_dir, ["neg", "pos"])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not writable")
        dyn = fit_full(model, load_tokenizer(tiny_bert_dir), texts, labels, ids,
                       _opts("full", epochs=1, learning_rate=1e-3, batch_size=8), CPU)
    assert len(dyn) == 8


def test_classification_metrics_by_hand():
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([[.9, .1], [.2, .8], [.3, .7], [.6, .4], [.1, .9]])
    m = classification_metrics(labels, probs, ["a", "b"])
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2})
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["recall"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_macro_f1_leaves_out_a_class_with_no_eval_row():
    # a rare class whose rows all went to training: a perfect model scored 0.667 (its F1 0)
    from sklearn.metrics import f1_score

    labels = np.array([0, 0, 1, 1, 0, 1])
    m = classification_metrics(labels, np.eye(3)[labels] * 0.9 + 0.05, ["a", "b", "rare"])
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0
    # not measured, so null in train/metrics.json: 0.0 read as a measured 0
    assert m["per_class"]["rare"] == {"precision": None, "recall": None, "f1": None,
                                      "support": 0}
    # a class predicted but absent from the eval rows costs its true class's recall only
    pred = np.array([0, 2, 1, 1, 0, 1])
    m = classification_metrics(labels, np.eye(3)[pred], ["a", "b", "rare"])
    assert m["macro_f1"] == pytest.approx((0.8 + 1.0) / 2)
    assert m["per_class"]["a"]["recall"] == pytest.approx(2 / 3)
    # predicted once and wrong: a measured precision of 0; recall and F1 not measured
    assert m["per_class"]["rare"] == {"precision": 0.0, "recall": None, "f1": None,
                                      "support": 0}
    assert json.loads(json.dumps(m["per_class"]))["rare"]["f1"] is None
    assert m["macro_f1"] == pytest.approx(f1_score(labels, pred, labels=[0, 1],
                                                   average="macro"))


def test_classification_metrics_of_no_samples():
    m = classification_metrics(np.array([], dtype=np.int64), np.zeros((0, 2)), ["a", "b"])
    assert np.isnan(m["accuracy"]) and np.isnan(m["macro_f1"]) and m["n"] == 0
    assert m["per_class"]["b"] == {"precision": None, "recall": None, "f1": None, "support": 0}


def test_stratified_folds_spread_each_class():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 6)
    fold = stratified_folds(labels, 5, seed=3)
    for c in range(3):
        counts = np.bincount(fold[labels == c], minlength=5)
        assert counts.max() - counts.min() <= 1
    assert np.array_equal(fold, stratified_folds(labels, 5, seed=3))
    with pytest.raises(ValueError, match="class index 1 has only 5 training samples"):
        stratified_folds(labels, 6, seed=0)


def test_copies_of_a_text_share_a_fold_and_each_class_stays_spread():
    # a copy held out was predicted by a fold model trained on its twin: 13% of duplicated
    # pairs shared a fold, and their wrong labels looked right out of fold
    labels = np.array([0] * 40 + [1] * 20 + [2] * 12)
    texts = [f"text {i}" for i in range(len(labels))]
    for a, b in [(0, 1), (0, 2), (3, 45), (40, 41), (60, 61), (62, 63)]:
        texts[b] = texts[a]  # 0, 1 and 2 one text; 3 (class 0) and 45 (class 1) one text
    texts[4] = "  TEXT 5 "  # equal to row 5 once whitespace and case are normalised
    for seed in range(20):
        fold = stratified_folds(labels, 4, seed, texts)
        for group in ([0, 1, 2], [3, 45], [4, 5], [40, 41], [60, 61], [62, 63]):
            assert len(set(fold[group])) == 1, (seed, group)
        for c in range(3):
            counts = np.bincount(fold[labels == c], minlength=4)
            assert counts.max() - counts.min() <= 2, (seed, c, counts)  # a triple is whole
        assert np.bincount(fold, minlength=4).min() >= 16
        assert np.array_equal(fold, stratified_folds(labels, 4, seed, texts))
    # without copies: the folds of the rows alone, a round robin over each shuffled class
    unique = [f"u{i}" for i in range(len(labels))]
    assert np.array_equal(stratified_folds(labels, 4, 7, unique), stratified_folds(labels, 4, 7))
    members = np.random.default_rng(7).permutation(40)  # class 0, as the round robin deals it
    np.testing.assert_array_equal(stratified_folds(labels, 4, 7)[members], np.arange(40) % 4)


def test_a_class_of_copies_of_one_text_is_spread_so_every_fold_model_sees_it(caplog):
    # all the "[removed]" rows went to one fold, whose model trained on none of them, silently
    labels = np.array([0] * 40 + [1] * 40 + [2] * 6 + [3] * 8)
    texts = [f"review number {i}" for i in range(80)] + ["[removed]"] * 5 + ["[Removed] "]
    texts += ["shared"] * 4 + ["other"] * 4  # class 3: two texts, one copy labelled 0 too
    texts[0] = "shared"
    classes = ["ham", "spam", "removed", "two texts"]
    for seed in range(10):
        with caplog.at_level("WARNING", logger="relabeler.jobs.train"):
            caplog.clear()
            fold = stratified_folds(labels, 5, seed, texts, classes)
        assert np.bincount(fold[labels == 2], minlength=5).tolist() in (
            [2, 1, 1, 1, 1], [1, 2, 1, 1, 1], [1, 1, 2, 1, 1], [1, 1, 1, 2, 1], [1, 1, 1, 1, 2])
        for f in range(5):  # every fold model trains on rows of every class
            assert np.bincount(labels[fold != f], minlength=4).min() > 0, (seed, f)
        # the other classes keep their copies together
        assert len(set(fold[[0, 86, 87, 88, 89]])) == 1 and len(set(fold[90:])) == 1
        assert caplog.messages == [
            "train: the rows of 'removed' are copies of too few texts to keep copies in one fold "
            "(a fold model would never see the class): that class's rows are spread over the 5 "
            "folds, so a copy may be predicted out of fold by a model trained on its twin"]
        assert np.array_equal(fold, stratified_folds(labels, 5, seed, texts, classes))
    # a class whose copies carry another class's label mostly: spread too (named by index)
    labels = np.array([0] * 20 + [1] * 4)
    texts = ["same"] * 10 + [f"t{i}" for i in range(10)] + ["SAME"] * 4
    with caplog.at_level("WARNING", logger="relabeler.jobs.train"):
        caplog.clear()
        fold = stratified_folds(labels, 4, 0, texts)
    assert np.bincount(fold[labels == 1], minlength=4).tolist() == [1, 1, 1, 1]
    assert len(set(fold[:10])) == 1  # class 0's copies still share a fold
    assert "the rows of class index 1 are copies" in caplog.text


@pytest.mark.parametrize("mode", ["head", "full"])
def test_samples_of_weight_zero_do_not_train(tiny_bert_dir, mode):
    texts, labels, ids = _data(32)
    seed_everything(0)
    model = load_classifier(tiny_bert_dir, ["neg", "pos"])
    tokenizer = load_tokenizer(tiny_bert_dir)
    weights = (labels == 0).astype(np.float64) * 2  # only the neg samples count
    if mode == "head":
        cls = encoder_cls(model, tokenizer, texts, max_length=48, batch_size=16, device=CPU)
        fit_head(model, cls, labels, ids, _opts("head", epochs=20, learning_rate=5e-2), CPU,
                 sample_weights=weights)
        probs = head_probs(model, cls, CPU)
    else:
        fit_full(model, tokenizer, texts, labels, ids,
                 _opts("full", epochs=4, learning_rate=1e-3, batch_size=8), CPU,
                 sample_weights=weights)
        probs = predict_probs(model, tokenizer, texts, max_length=48, batch_size=8, device=CPU)
    assert (probs.argmax(1) == 0).all()  # every text, pos ones too, predicted neg
    with pytest.raises(ValueError, match="sample_weights must be"):
        fit_head(model, torch.zeros(32, 4), labels, ids, _opts("head", epochs=1), CPU,
                 sample_weights=weights[:3])


@pytest.mark.parametrize("mode", ["head", "full"])
def test_a_fit_is_seeded_and_leaves_the_callers_random_streams_as_they_were(tiny_bert_dir,
                                                                             mode):
    """A notebook that seeds its own streams and then trains goes on with its own draws (a fit
    seeded Python's, numpy's and torch's global generators with 0 for good)."""
    import random

    from relabeler.jobs.train import fit

    texts, labels, ids = _data(16)
    opts = _opts(mode, epochs=2, learning_rate=1e-3, batch_size=8)

    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    heads = []
    for _ in range(2):
        random.seed(42), np.random.seed(42), torch.manual_seed(42)
        wanted = draws()
        random.seed(42), np.random.seed(42), torch.manual_seed(42)
        model, _, _ = fit(tiny_bert_dir, ["neg", "pos"], texts, labels, ids, opts, CPU)
        assert draws() == wanted
        heads.append(model.classifier.weight.detach().clone())
    torch.testing.assert_close(heads[0], heads[1], rtol=0, atol=0)  # the fit's own seed


def test_a_class_of_one_row_says_that_only_no_folds_can_run():
    # "use fewer folds (--folds)" sent people to --folds 1, which is refused: with a class of
    # one row the only choice is none
    import pandas as pd

    from relabeler.errors import ConfigError
    from relabeler.jobs.folds import check_folds

    labels = pd.Series(["a"] * 9 + ["b"] * 3 + ["<none>"])
    with pytest.raises(ConfigError) as err:
        check_folds(labels, 2)
    assert str(err.value) == (
        "train.folds = 2 needs at least 2 training rows per class: '<none>' has 1; use "
        "--folds 0 (no folds: the noise model then reads the model's in-sample "
        "probabilities), or add rows to those classes")
    with pytest.raises(ConfigError, match=r"'<none>' has 1, 'b' has 3; use --folds 0 "):
        check_folds(labels, 5)
    check_folds(labels[:12], 3)  # three rows of 'b' hold three folds
    with pytest.raises(ConfigError, match=r"'b' has 3; use --folds 3 or fewer, or add"):
        check_folds(labels[:12], 4)
