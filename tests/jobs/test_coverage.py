"""score's coverage part: representation in the coverage score, regions, acquisition, and the
named thin regions."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from relabeler import artifacts
from relabeler.config import ScoreConfig
from relabeler.jobs.coverage import pool_copies, score_coverage, thin_region_table
from relabeler.jobs.score import SplitView, TrainView
from relabeler.report.thin_regions import thin_region_html, thin_region_section
from relabeler.store import RunStore


def _view(features, labels, ids, cls=SplitView, **extra):
    probs = np.zeros((len(features), 2), np.float32)
    probs[np.arange(len(features)), np.maximum(labels, 0)] = 1.0
    return cls(ids=np.asarray(ids, dtype=object), labels=labels, features=features,
               probs=probs, pred=np.maximum(labels, 0), **extra)


def _data():
    """Train covers two topics (class 0 and 1); a third topic lives in eval and pool only."""
    rng = np.random.default_rng(0)
    centres = np.eye(3, dtype=np.float32) * 5

    def cloud(c, n):
        return (centres[c] + rng.normal(0, 0.4, size=(n, 3))).astype(np.float32)

    train = np.vstack([cloud(0, 30), cloud(1, 30)])
    train_labels = np.array([0] * 30 + [1] * 30)
    evaluation = np.vstack([cloud(0, 8), cloud(1, 8), cloud(2, 4)])
    pool = np.vstack([cloud(0, 20), cloud(1, 20), cloud(2, 10)])
    return train, train_labels, evaluation, pool


def test_the_topic_train_lacks_is_under_covered_and_acquired():
    train, labels, evaluation, pool = _data()
    train_view = _view(train, labels, [f"t{i}" for i in range(60)], TrainView,
                       classes=["a", "b"], oof_probs=None, margins=None)
    eval_pred = np.array([0] * 8 + [1] * 8 + [0] * 4)
    splits = {"eval": _view(evaluation, eval_pred, [f"e{i}" for i in range(20)]),
              "pool": _view(pool, np.array([0] * 20 + [1] * 20 + [0] * 10),
                            [f"p{i}" for i in range(50)])}
    cov, acquire = score_coverage(train_view, splits, ScoreConfig(
        k=5, coverage_quantile=0.2, acquire_budget=8, diversity_threshold=0.9999,
        acquire_targets="undercovered"), seed=0)
    third = cov["id"].isin([f"e{i}" for i in range(16, 20)] + [f"p{i}" for i in range(40, 50)])
    # no training row near the third topic: representation 0, coverage 0, all under-covered
    assert (cov.loc[third, "representation"] == 0).all()
    assert (cov.loc[third, "coverage_score"] == 0).all()
    assert cov.loc[third, "is_undercovered"].all()
    assert cov["is_undercovered"].sum() == 14  # round(0.2 * 70)
    assert (cov.loc[~cov["is_undercovered"], "region"] == -1).all()
    assert (cov.loc[cov["is_undercovered"], "region"] >= 0).all()
    # the picks are the third topic's pool samples, ranked, with their support and region
    assert len(acquire) == 8 and acquire["rank"].tolist() == list(range(1, 9))
    assert set(acquire["id"]) <= {f"p{i}" for i in range(40, 50)}
    assert (acquire["support"] > 0).all()
    assert set(acquire["near_id"]) <= set(cov.loc[cov["is_undercovered"], "id"])


def test_acquisition_supports_the_thin_eval_samples_the_model_gets_wrong():
    train, labels, evaluation, pool = _data()
    train_view = _view(train, labels, [f"t{i}" for i in range(60)], TrainView,
                       classes=["a", "b"], oof_probs=None, margins=None)
    # the third topic's eval samples are class 1, the model calls them 0; one eval sample of
    # the first topic is wrong too, but its neighbourhood is in train
    eval_labels = np.array([0] * 7 + [1] + [1] * 8 + [1] * 4)
    eval_view = _view(evaluation, eval_labels, [f"e{i}" for i in range(20)])
    eval_view.probs[:] = 0.0
    eval_view.probs[np.arange(20), [0] * 8 + [1] * 8 + [0] * 4] = 1.0
    pool_pred = np.array([0] * 20 + [1] * 20 + [0] * 10)
    splits = {"eval": eval_view,
              "pool": _view(pool, pool_pred, [f"p{i}" for i in range(50)])}
    splits["pool"].labels[:] = -1
    # every eval row may steer here (the default lets a stable half of them)
    _, acquire = score_coverage(train_view, splits, ScoreConfig(
        k=5, coverage_quantile=0.2, acquire_budget=8, diversity_threshold=0.9999,
        acquire_targets="eval", acquire_eval_share=1.0), seed=0)
    assert len(acquire) == 8 and acquire["rank"].tolist() == list(range(1, 9))
    assert set(acquire["id"]) <= {f"p{i}" for i in range(40, 50)}
    assert set(acquire["near_id"]) <= {f"e{i}" for i in range(16, 20)}
    assert (acquire["support"] > 0).all()
    assert acquire["support"].is_monotonic_decreasing
    # without eval labels the under-covered samples are the targets, as acquire_targets =
    # "undercovered" (the default) makes them
    cfg = dict(k=5, coverage_quantile=0.2, acquire_budget=8, diversity_threshold=0.9999)
    _, undercovered = score_coverage(train_view, splits, ScoreConfig(**cfg), seed=0)
    splits["eval"].labels[:] = -1
    _, fallback = score_coverage(train_view, splits, ScoreConfig(**cfg, acquire_targets="eval"),
                                 seed=0)
    pd.testing.assert_frame_equal(fallback, undercovered)
    assert set(fallback["id"]) <= {f"p{i}" for i in range(40, 50)}
    assert (acquire["targets"] == "eval").all() and (fallback["targets"] == "undercovered").all()


def _labeled_splits(evaluation, pool, eval_labels):
    """The eval split with ``eval_labels`` and the model calling the third topic class 0;
    the pool, unlabeled, predicted by topic."""
    eval_view = _view(evaluation, np.asarray(eval_labels), [f"e{i}" for i in range(20)])
    eval_view.probs[:] = 0.0
    eval_view.probs[np.arange(20), [0] * 8 + [1] * 8 + [0] * 4] = 1.0
    pool_view = _view(pool, np.array([0] * 20 + [1] * 20 + [0] * 10),
                      [f"p{i}" for i in range(50)])
    pool_view.labels[:] = -1
    return eval_view, pool_view


def test_the_under_covered_samples_fill_what_the_eval_targets_leave_of_the_budget():
    train, labels, evaluation, pool = _data()
    train_view = _view(train, labels, [f"t{i}" for i in range(60)], TrainView,
                       classes=["a", "b"], oof_probs=None, margins=None)
    # one thin eval sample is wrong: its support reaches the third topic's pool samples only
    eval_view, pool_view = _labeled_splits(evaluation, pool, [0] * 8 + [1] * 8 + [1] + [0] * 3)
    cfg = dict(k=5, coverage_quantile=0.2, acquire_budget=14, diversity_threshold=0.9999,
               acquire_targets="eval", acquire_eval_share=1.0)
    _, acquire = score_coverage(train_view, {"eval": eval_view, "pool": pool_view},
                                ScoreConfig(**cfg), seed=0)
    # the third topic's 10 pool samples support e16 and come first; the under-covered
    # samples' picks fill the budget after them, none twice
    third = {f"p{i}" for i in range(40, 50)}
    assert set(acquire["id"][:10]) == third and (acquire["near_id"][:10] == "e16").all()
    assert not set(acquire["id"][10:]) & third
    assert len(acquire) == 14 and acquire["id"].is_unique
    assert acquire["rank"].tolist() == list(range(1, 15))
    assert list(acquire.columns) == ["id", "rank", "near_id", "similarity", "support", "region",
                                     "targets"]
    # which targets chose each pick (one more pool sample has a little support of e16): the
    # report measures the gain of eval-chosen picks without the eval rows that chose them
    assert acquire["targets"].tolist() == ["eval"] * 11 + ["undercovered"] * 3


def test_a_pool_copy_of_an_eval_or_training_row_is_never_acquired():
    train, labels, evaluation, pool = _data()
    train_view = _view(train, labels, [f"t{i}" for i in range(60)], TrainView,
                       classes=["a", "b"], oof_probs=None, margins=None)
    pool[40] = evaluation[16]  # the pool's copy of a thin eval row the model gets wrong
    pool[41] = evaluation[17]
    eval_view, pool_view = _labeled_splits(evaluation, pool, [0] * 8 + [1] * 8 + [1] * 4)
    splits = {"eval": eval_view, "pool": pool_view}
    duplicates = pd.DataFrame({"group_id": [0, 0, 1, 1, 2, 2, 3, 3],
                               "id": ["e16", "p40", "e17", "p41", "t3", "p3", "p5", "p6"],
                               "split": ["eval", "pool"] * 3 + ["pool", "pool"]})
    copies = pool_copies(duplicates)
    assert copies == {"p40", "p41", "p3"}  # p5 and p6 copy only each other
    for targets in ("eval", "undercovered"):
        cfg = ScoreConfig(k=5, coverage_quantile=0.2, acquire_budget=8,
                          diversity_threshold=0.9999, acquire_targets=targets,
                          acquire_eval_share=1.0)
        cov, plain = score_coverage(train_view, splits, cfg, seed=0)
        assert set(plain["id"]) & {"p40", "p41"}  # a copy supports its twin most
        cov_left, acquire = score_coverage(train_view, splits, cfg, seed=0, copies=copies)
        assert not set(acquire["id"]) & copies
        assert len(acquire) == 8 and set(acquire["id"]) <= {f"p{i}" for i in range(42, 50)}
        assert acquire["rank"].tolist() == list(range(1, 9))
        pd.testing.assert_frame_equal(cov_left, cov)  # coverage still reads every pool row


def test_acquire_spread_keeps_the_budget_farthest_first_among_more_candidates():
    from relabeler.selectors.coverage import farthest_first

    train, labels, evaluation, pool = _data()
    train_view = _view(train, labels, [f"t{i}" for i in range(60)], TrainView,
                       classes=["a", "b"], oof_probs=None, margins=None)
    eval_view = _view(evaluation, np.array([0] * 8 + [1] * 8 + [0] * 4),
                      [f"e{i}" for i in range(20)])
    pool_view = _view(pool, np.array([0] * 20 + [1] * 20 + [0] * 10),
                      [f"p{i}" for i in range(50)])
    splits = {"eval": eval_view, "pool": pool_view}
    cfg = dict(k=5, coverage_quantile=0.2, diversity_threshold=0.9999)
    _, candidates = score_coverage(train_view, splits, ScoreConfig(**cfg, acquire_budget=12),
                                   seed=0)
    _, spread = score_coverage(train_view, splits, ScoreConfig(
        **cfg, acquire_budget=8, acquire_spread=1.5), seed=0)
    # the first 12 candidates, 8 of them kept farthest-first, in their ranking's order
    rows = candidates["id"].str[1:].astype(int).to_numpy()
    kept = farthest_first(pool[rows], 8)
    assert spread["id"].tolist() == candidates["id"].iloc[kept].tolist()
    assert spread["id"].iloc[0] == candidates["id"].iloc[0]
    assert spread["rank"].tolist() == list(range(1, 9))
    pd.testing.assert_series_equal(
        spread["support"], candidates["support"].iloc[kept].reset_index(drop=True))
    assert spread["id"].tolist() != candidates["id"].head(8).tolist()  # it did spread
    # spread 1 is the first acquire_budget, as before
    _, plain = score_coverage(train_view, splits, ScoreConfig(**cfg, acquire_budget=8), seed=0)
    pd.testing.assert_frame_equal(plain, candidates.head(8))
    with pytest.raises(ValueError, match="acquire_spread"):
        ScoreConfig(acquire_spread=0.5)


def test_thin_regions_are_named_by_size_words_and_examples(tmp_path):
    store = RunStore(tmp_path / "run")
    texts = {"train": [f"shop order item {i}" for i in range(6)],
             "eval": ["forum thread reply", "forum moderator thread", "shop order basket"],
             "pool": ["thread forum post", "shop parcel order"]}
    for split, values in texts.items():
        frame = pd.DataFrame({"id": [f"{split}{i}" for i in range(len(values))], "text": values,
                              "label": ["a"] * len(values) if split != "pool" else None})
        store.write_table(artifacts.SPLIT(split=split),
                          pa.Table.from_pandas(frame, preserve_index=False))
    cov = pd.DataFrame({"id": ["eval0", "eval1", "eval2", "pool0", "pool1"],
                        "split": ["eval"] * 3 + ["pool"] * 2,
                        "coverage_score": [0.1, 0.05, 0.9, 0.2, 0.8],
                        "representation": [0.0, 0.0, 1.2, 0.1, 1.0],
                        "region": [0, 0, -1, 0, -1]})
    regions = thin_region_table(store, cov)
    assert regions.to_dict("records")[0] | {"coverage_mean": None,
                                            "representation_mean": None} == {
        "region": 0, "n": 3, "n_eval": 2, "n_pool": 1, "coverage_mean": None,
        "representation_mean": None, "terms": regions["terms"][0],
        "example_ids": ["eval1", "eval0", "pool0"],
        "example_texts": ["forum moderator thread", "forum thread reply", "thread forum post"]}
    assert regions["coverage_mean"][0] == np.float64((0.1 + 0.05 + 0.2) / 3)
    assert regions["terms"][0][:2] in (["forum", "thread"], ["thread", "forum"])
    store.write_table(artifacts.THIN_REGIONS.path,
                      pa.Table.from_pandas(regions, preserve_index=False,
                                           schema=artifacts.THIN_REGIONS.schema))
    section = thin_region_section(store)
    assert section["n_regions"] == 1 and section["n_samples"] == 3
    assert section["top"][0]["examples"][0] == "forum moderator thread"
    page = thin_region_html(section)
    assert "<h2>Thin regions</h2>" in page and "forum moderator thread" in page
    assert thin_region_html({}) == ""


TOPICS = {0: ["refund", "invoice", "charge", "billing", "payment"],
          1: ["crash", "error", "freeze", "bug", "screen"],
          2: ["password", "login", "locked", "account", "reset"]}
FILLER = ["the", "my", "app", "today", "again", "please", "help", "since", "update"]


def _texts(topics, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.permutation(list(rng.choice(TOPICS[t], 3, replace=False))
                                     + list(rng.choice(FILLER, 3)))) for t in topics]


def test_the_words_find_the_topic_the_encoder_cannot_tell_apart():
    # the encoder's features are noise (its states hold no topic); the words hold it. Train
    # lacks topic 2, which eval and pool hold: with the words in the similarity (the default
    # coverage_words, 0.5) the picks are its pool rows, without them few are
    rng = np.random.default_rng(1)
    topics = {"train": np.repeat([0, 1], 40), "eval": np.repeat([0, 1, 2], [10, 10, 6]),
              "pool": np.repeat([0, 1, 2], [30, 30, 15])}
    texts = {name: _texts(t, i) for i, (name, t) in enumerate(topics.items())}
    features = {name: rng.normal(size=(len(t), 64)).astype(np.float32)
                for name, t in topics.items()}
    train_view = _view(features["train"], topics["train"], [f"t{i}" for i in range(80)],
                       TrainView, classes=["a", "b"], oof_probs=None, margins=None)
    splits = {"eval": _view(features["eval"], np.minimum(topics["eval"], 1),
                            [f"e{i}" for i in range(26)]),
              # the model's predictions of the pool rows (their labels are not read)
              "pool": _view(features["pool"], np.minimum(topics["pool"], 1),
                            [f"p{i}" for i in range(75)])}
    third = {f"p{i}" for i in range(60, 75)}
    cfg = dict(k=5, coverage_quantile=0.2, acquire_budget=10, acquire_targets="undercovered")
    _, blind = score_coverage(train_view, splits, ScoreConfig(**cfg, coverage_words=0), seed=0,
                              texts={"train": texts["train"], **texts})
    cov, seeing = score_coverage(train_view, splits, ScoreConfig(**cfg), seed=0,
                                 texts={"train": texts["train"], **texts})
    # topic 2 is a fifth of the pool: blind, 2 of the 10 picks; seeing, all 10
    assert blind["id"].isin(third).mean() <= 0.3
    assert seeing["id"].isin(third).all()
    undercovered = cov.loc[cov["is_undercovered"], "id"]
    assert undercovered.isin(third | {f"e{i}" for i in range(20, 26)}).mean() >= 0.8
    # without texts, or with texts that share no word, the encoder's features alone
    _, alone = score_coverage(train_view, splits, ScoreConfig(**cfg), seed=0)
    pd.testing.assert_frame_equal(alone, blind)
    unique = {name: [f"w{name}{i}" for i in range(len(t))] for name, t in topics.items()}
    _, no_words = score_coverage(train_view, splits, ScoreConfig(**cfg), seed=0,
                                 texts={"train": unique["train"], **unique})
    pd.testing.assert_frame_equal(no_words, blind)


def test_coverage_texts_must_match_the_splits():
    train, labels, evaluation, pool = _data()
    train_view = _view(train, labels, [f"t{i}" for i in range(60)], TrainView,
                       classes=["a", "b"], oof_probs=None, margins=None)
    splits = {"eval": _view(evaluation, np.zeros(20, np.int64), [f"e{i}" for i in range(20)]),
              "pool": _view(pool, np.full(50, -1), [f"p{i}" for i in range(50)])}
    texts = {"train": ["a b"] * 60, "eval": ["a b"] * 20}
    with pytest.raises(ValueError, match=r"texts: no texts for \['pool'\]"):
        score_coverage(train_view, splits, ScoreConfig(), texts=texts)
    with pytest.raises(ValueError, match=r"texts\['pool'\]: expected 50 texts, got 3"):
        score_coverage(train_view, splits, ScoreConfig(), texts={**texts, "pool": ["a"] * 3})
