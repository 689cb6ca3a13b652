"""score: the suspects queue, coverage and acquisition tables from a real run directory."""

import gc
import json

import numpy as np
import pytest

from relabeler.config import RunConfig, ScoreConfig
from relabeler.jobs import StageError
from relabeler.jobs.coverage import pool_copies
from relabeler.jobs.score import TrainView, collector_paused, fit_representer_auto, run_score
from relabeler.selectors.representer import RepresenterFitError
from relabeler.store import RunStore
from tests.jobs._scored_run import make_scored_run


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory, tiny_bert_dir, ray_session):
    # 8 wrong labels, some land in train
    return make_scored_run(tmp_path_factory.mktemp("score"), tiny_bert_dir, rows=160,
                           flipped=8, epochs=20, folds=2, acquire_budget=7, evidence_top=30,
                           min_agreement=0.5)


def assert_ranks_every_row(ranked, split) -> None:
    """A ranking of every row of ``split``: ranks 1..N, scores in [0, 1] falling with rank,
    and each row's given label as the split holds it."""
    assert sorted(ranked["id"]) == sorted(split["id"])
    assert ranked["rank"].tolist() == list(range(1, len(split) + 1))
    assert ranked["suspect_score"].is_monotonic_decreasing
    assert ranked["suspect_score"].between(0, 1).all()
    given = dict(zip(split["id"], split["label"], strict=True))
    assert [given[i] for i in ranked["id"]] == ranked["given_label"].tolist()


@pytest.mark.slow
def test_suspects_table_is_complete_and_ranked(scored_run):
    store, _, info = scored_run
    suspects = store.read_table("scores/suspects.parquet").to_pandas()
    train = store.read_table("dataset/train.parquet").to_pandas()
    assert_ranks_every_row(suspects, train)
    labels = dict(zip(train["id"], train["label"], strict=True))
    assert (suspects["given_label"] == suspects["id"].map(labels)).all()
    assert (suspects["suggested_label"] != suspects["given_label"]).all()
    for column in ("margin", "oof_margin", "knn_margin", "area_under_margin", "words_margin",
                   "representer", "duplicate_conflict", "self_confidence", "knn_disagreement",
                   "wrong_probability"):
        assert suspects[column].between(0, 1).all(), column
    # the chance that the given label is wrong holds at least the suggested class's posterior
    assert (suspects["wrong_probability"] >= suspects["suggested_confidence"] - 1e-6).all()
    # the default score is the mean of the five views' ranks (average ranks over ties, 0 to 1);
    # the words vote: this run's texts tell its labels better than the class shares
    views = suspects[["margin", "oof_margin", "knn_margin", "area_under_margin",
                      "words_margin"]]
    ranks = (views.rank(method="average") - 1) / (len(views) - 1)
    np.testing.assert_allclose(suspects["suspect_score"], ranks.mean(axis=1), atol=1e-5)
    assert info["n_train"] == len(train)


@pytest.mark.slow
def test_evidence_points_at_other_training_samples(scored_run):
    store, _, _ = scored_run
    suspects = store.read_table("scores/suspects.parquet").to_pandas()
    ids = set(suspects["id"])
    with_evidence = suspects[suspects["rank"] <= 30]
    assert all(len(x) == 5 for x in with_evidence["support_ids"])
    for row in with_evidence.itertuples():
        assert row.id not in row.support_ids and row.id not in row.oppose_ids
        assert set(row.support_ids) <= ids and set(row.oppose_ids) <= ids
        assert list(row.support_scores) == sorted(row.support_scores, reverse=True)
        assert list(row.oppose_scores) == sorted(row.oppose_scores)
    assert all(len(x) == 0 for x in suspects[suspects["rank"] > 30]["support_ids"])
    assert all(len(r) >= 0 for r in suspects["reasons"])
    assert any(len(r) > 0 for r in suspects["reasons"].head(10))


@pytest.mark.slow
def test_coverage_and_acquisition(scored_run):
    store, _, info = scored_run
    cov = store.read_table("scores/coverage.parquet").to_pandas()
    evaluation = store.read_table("dataset/eval.parquet").to_pandas()
    pool = store.read_table("dataset/pool.parquet").to_pandas()
    assert sorted(cov[cov.split == "eval"]["id"]) == sorted(evaluation["id"])
    assert sorted(cov[cov.split == "pool"]["id"]) == sorted(pool["id"])
    assert cov["coverage_score"].between(0, 1).all()
    n_under = int(round(0.1 * len(cov)))
    assert cov["is_undercovered"].sum() == n_under == info["n_undercovered"]
    assert cov[cov.is_undercovered]["coverage_score"].max() <= \
        cov[~cov.is_undercovered]["coverage_score"].min()
    acquire = store.read_table("scores/acquire.parquet").to_pandas()
    assert 0 < len(acquire) <= 7
    assert set(acquire["id"]) <= set(pool["id"])
    assert acquire["rank"].tolist() == list(range(1, len(acquire) + 1))
    assert set(acquire["near_id"]) <= set(cov[cov.is_undercovered]["id"])
    summary = json.loads(store.read_bytes("scores/summary.json"))
    assert summary["n_acquire"] == len(acquire)
    # the default targets: no pick was chosen by eval labels
    assert (acquire["targets"] == "undercovered").all()
    # the pool copies of training or eval rows are never candidates
    dups = store.read_table("scores/duplicates.parquet").to_pandas()
    copies = pool_copies(dups)
    assert not set(acquire["id"]) & copies
    assert summary["acquisition"] == {"targets": "undercovered", "eval_share": 0.5,
                                      "by_eval": 0, "pool_copies_left_out": len(copies)}


def test_score_before_extract_is_a_clear_error(tmp_path, caplog):
    with pytest.raises(StageError, match="score needs training features"):
        run_score(RunStore(tmp_path / "run"), RunConfig(run_dir=str(tmp_path / "run")))
    # a score whose features went: the error, without "redone from the start" before it
    store = RunStore(tmp_path / "run")
    store.mark_done("extract.train")
    store.mark_done("score")
    store.remove("_stages/extract.train.json")
    with caplog.at_level("WARNING"), pytest.raises(StageError, match="score needs training "
                                                                     "features"):
        run_score(store, RunConfig(run_dir=str(tmp_path / "run")))
    assert "redone from the start" not in caplog.text


@pytest.mark.slow
def test_knn_sharded_over_ray_actors_gives_the_same_queue(scored_run):
    import copy

    from relabeler.jobs.score import load_train_view, score_suspects

    store, config, _ = scored_run
    sharded = copy.deepcopy(config.score)
    sharded.knn_shards = 2
    frame, _ = score_suspects(load_train_view(store), sharded, config.ray)
    stored = store.read_table("scores/suspects.parquet").to_pandas()
    assert frame["id"].tolist() == stored["id"].tolist()
    for column in ("suspect_score", "knn_margin", "knn_disagreement", "duplicate_conflict"):
        np.testing.assert_allclose(frame[column], stored[column], atol=1e-6)


@pytest.mark.slow
def test_noise_model_corrects_the_views_and_reports_its_estimate(scored_run):
    import copy

    from relabeler.jobs.score import load_train_view, score_suspects
    from relabeler.selectors import confidence, noise

    store, config, _ = scored_run
    view = load_train_view(store)
    summary = json.loads(store.read_bytes("scores/summary.json"))
    assert summary["noise_model"] == "auto"
    estimate = summary["noise"]
    model = noise.fit_noise_model(view.oof_probs, view.labels, len(view.classes))
    assert estimate["model"] == model.kind
    assert estimate["asymmetry_per_flip"] == pytest.approx(model.asymmetry_per_flip, abs=1e-4)
    assert estimate["asymmetry_p_value"] == pytest.approx(model.asymmetry_p_value, rel=1e-2)
    assert 0.0 <= estimate["estimated_wrong_share"] < 0.5
    given_by_true = estimate["given_by_true"]
    assert sorted(given_by_true) == sorted(view.classes)
    for j, (true, row) in enumerate(given_by_true.items()):
        assert list(row) == view.classes and true == view.classes[j]
        np.testing.assert_allclose(list(row.values()), model.transition[j], atol=1e-4)
    # the stored out-of-fold view is the corrected posterior's margin
    def corrected(transition):
        return confidence.normalized_margin(
            noise.noise_aware_posterior(view.oof_probs, view.labels, transition), view.labels)

    stored = store.read_table("scores/suspects.parquet").to_pandas().set_index("id")
    np.testing.assert_allclose(stored.loc[view.ids, "oof_margin"], corrected(model.transition),
                               atol=1e-6)
    # uniform noise forced, whichever auto chose
    forced = copy.deepcopy(config.score)
    forced.noise_model = "uniform"
    frame, info = score_suspects(view, forced, config.ray)
    assert info["noise"]["model"] == "uniform"
    np.testing.assert_allclose(frame.set_index("id").loc[view.ids, "oof_margin"],
                               corrected(noise.uniform_transition(model.joint)), atol=1e-6)

    plain = copy.deepcopy(config.score)
    plain.noise_model = "none"
    frame, info = score_suspects(view, plain, config.ray)
    frame = frame.set_index("id").loc[view.ids]
    assert info["noise_model"] == "none" and "noise" not in info
    np.testing.assert_allclose(frame["oof_margin"],
                               confidence.normalized_margin(view.oof_probs, view.labels),
                               atol=1e-6)
    np.testing.assert_allclose(frame["area_under_margin"],
                               confidence.area_under_margin(view.margins), atol=1e-6)
    # self-confidence columns are the model's own, in both modes
    np.testing.assert_allclose(frame["oof_self_confidence"],
                               stored.loc[view.ids, "oof_self_confidence"], atol=1e-6)


def test_collector_paused_restores_the_collector_state_even_on_error():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="boom"), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # a caller's own pause is left as it was
    finally:
        gc.enable()


@pytest.mark.slow
def test_shortcuts_and_balance_are_written(scored_run):
    store, _, info = scored_run
    shortcuts = store.read_table("scores/shortcuts.parquet").to_pandas()
    balance = store.read_table("scores/balance.parquet").to_pandas()
    train = store.read_table("dataset/train.parquet").to_pandas()
    assert info["shortcuts"]["n_significant"] == len(shortcuts)
    assert shortcuts["rank"].tolist() == list(range(1, len(shortcuts) + 1))
    assert (shortcuts["p_value"] < info["shortcuts"]["p_threshold"]).all()
    assert shortcuts["class"].isin(["neg", "pos"]).all()
    assert (shortcuts["class_share"] > 0.5).all()
    assert sorted(balance["class"]) == ["neg", "pos"]
    assert balance["count"].sum() == len(train)
    assert balance["eval_recall"].between(0, 1).all()


@pytest.mark.slow
def test_score_ranks_the_eval_rows_for_the_audit(scored_run):
    store, _, info = scored_run
    evaluation = store.read_table("dataset/eval.parquet").to_pandas()
    ranked = store.read_table("scores/eval_suspects.parquet").to_pandas()
    assert_ranks_every_row(ranked, evaluation)
    assert (ranked["suggested_label"] != ranked["given_label"]).all()
    assert info["eval_audit"] == {"ranked": len(evaluation)}


def test_representer_refit_goes_stronger_for_a_model_that_did_not_fit_its_labels():
    # the model predicts the class its features say; 20% of the labels disagree. A weakly
    # regularised refit follows the labels (94.7% agreement with the model), a strong one the
    # model (96.7% at 100x the configured strength)
    rng = np.random.default_rng(0)
    n, d = 300, 16
    true = rng.integers(0, 2, n)
    centers = rng.normal(size=(2, d))
    features = (centers[true] * 0.6 + rng.normal(size=(n, d))).astype(np.float32)
    labels = np.where(rng.random(n) < 0.2, 1 - true, true)
    pred = (features @ (centers[1] - centers[0])
            > (centers[1] @ centers[1] - centers[0] @ centers[0]) / 2).astype(np.int64)
    view = TrainView(ids=np.arange(n).astype(object), labels=labels, features=features,
                     probs=np.zeros((n, 2), np.float32), pred=pred, classes=["a", "b"],
                     oof_probs=None, margins=None)
    fit = fit_representer_auto(view, ScoreConfig(representer_lambda=1e-3, min_agreement=0.96))
    assert fit.lam == pytest.approx(0.1)
    assert fit.agreement == pytest.approx(0.967, abs=0.002)
    with pytest.raises(RepresenterFitError, match=r"tried representer_lambda 0\.001, 0\.0001, "
                                                  r"0\.01, 1e-05, 0\.1, 1e-06\)"):
        fit_representer_auto(view, ScoreConfig(representer_lambda=1e-3, min_agreement=0.99))


def test_a_suggestion_named_by_duplicates_carries_that_labels_confidence():
    from relabeler.jobs.score import score_suspects, suspect_signals
    from relabeler.selectors import rank

    rng = np.random.default_rng(0)
    n, d, classes = 90, 8, ["a", "b", "c"]
    true = np.arange(n) % 3
    centers = rng.normal(size=(3, d)) * 3
    features = (centers[true] + rng.normal(size=(n, d))).astype(np.float32)
    # four copies of one text from class b's region: three say c, one says a. The posterior's
    # best class besides a is b; the copies' majority names c
    features[:4] = features[0]
    true[:4] = 1
    labels = true.copy()
    labels[:3], labels[3] = 2, 0
    texts = [f"text number {i}" for i in range(n)]
    texts[:4] = ["the same words"] * 4
    probs = np.full((n, 3), 0.1, np.float32)
    probs[np.arange(n), true] = 0.8
    view = TrainView(ids=np.array([f"r{i}" for i in range(n)], dtype=object), labels=labels,
                     features=features, probs=probs, pred=true, classes=classes,
                     oof_probs=None, margins=None, texts=texts)
    cfg = ScoreConfig(k=5)
    frame, _ = score_suspects(view, cfg)
    row = frame.set_index("id").loc["r3"]
    assert row["suggested_label"] == "c"
    _, distributions, _ = suspect_signals(view, cfg)
    posterior = rank.ensemble_posterior(distributions)
    assert rank.suggest_labels(posterior, labels)[0][3] == 1  # b, without the copies
    assert row["suggested_confidence"] == pytest.approx(posterior[3, 2], abs=1e-6)
    assert posterior[3, 2] < posterior[3, 1] - 0.05


@pytest.mark.slow
def test_a_finished_score_asked_again_with_other_settings_is_refused(scored_run, caplog):
    # `score --k 3` on a finished run said "already done" and kept the k = 10 scores silently;
    # then it warned and exited 0 with the old scores, which a script took for k = 3's
    from relabeler.errors import StageError
    from relabeler.jobs.score import run_score

    store, config, info = scored_run
    assert info["settings"]["k"] == config.score.k
    other = config.model_copy(deep=True)
    other.score.k = config.score.k + 1
    with pytest.raises(StageError, match=rf"^the scores in .* were made with other settings: "
                                         rf"score.k was {config.score.k}, now "
                                         rf"{config.score.k + 1}\. Give the settings they were "
                                         rf"made with, or pass --force"):
        run_score(store, other)
    placed = config.model_copy(deep=True)
    placed.score.knn_shards = 2  # where it runs is no change
    with caplog.at_level("INFO"):
        assert run_score(store, placed) == info
    assert f"score: already done in {store.uri} (use --force to redo)" in caplog.text


def _feature_run(tmp_path, *, n_train: int = 60, seed: int = 0,
                 erratic: bool = False) -> tuple[RunStore, RunConfig]:
    """A run directory holding what score reads, without a model: dataset splits, features of
    two Gaussian classes for train, eval and pool (the model's probabilities follow the
    features; ``erratic``: on train they alternate with the row, which no refit on the
    features follows), the classes and the finished markers of train and extract."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    classes = ["neg", "pos"]
    store = RunStore(tmp_path / "run")
    centers = rng.normal(size=(2, 8)) * 2
    store.write_json("model/labels.json", classes)
    store.mark_done("train")
    for split, n in (("train", n_train), ("eval", 20), ("pool", 20)):
        true = rng.integers(0, 2, n)
        features = (centers[true] + rng.normal(size=(n, 8))).astype(np.float32)
        logits = features @ (centers[1] - centers[0])
        probs = 1 / (1 + np.exp(-np.stack([-logits, logits], axis=1)))
        probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
        if erratic and split == "train":
            swap = probs.argmax(1) != np.arange(n) % 2
            probs[swap] = probs[swap][:, ::-1]
        ids = [f"{split}{i}" for i in range(n)]
        labels = [None if split == "pool" else classes[c] for c in true]
        store.write_table(f"dataset/{split}.parquet", pa.table({
            "id": ids, "text": [f"{classes[c]} words number {i}" for i, c in enumerate(true)],
            "label": pa.array(labels, pa.string())}))
        vector = pa.list_(pa.float32(), 8)
        store.write_shard(f"features/{split}", 0, pa.table({
            "id": ids, "label": pa.array(labels, pa.string()),
            "embedding": pa.array(list(features), vector),
            "logits": pa.array(list(np.stack([-logits, logits], 1).astype(np.float32)),
                               pa.list_(pa.float32(), 2)),
            "probs": pa.array(list(probs), pa.list_(pa.float32(), 2)),
            "pred": [classes[c] for c in probs.argmax(1)],
            "loss": np.zeros(n, np.float32), "n_tokens": np.full(n, 4, np.int32)}))
        store.mark_done(f"extract.{split}")
    config = RunConfig(run_dir=str(tmp_path / "run"))
    config.score.k = 5
    config.score.knn_shards = 0
    return store, config


def test_a_representer_refit_that_cannot_follow_the_model_leaves_the_ranking(
        tmp_path, caplog, capsys, monkeypatch):
    # the refit agreed on fewer predictions than min_agreement at every L2 strength: the whole
    # stage stopped, although the representer does not vote
    from relabeler import cli
    from relabeler.jobs.score import load_train_view

    store, config = _feature_run(tmp_path, erratic=True)
    config.score.min_agreement = 0.9
    with caplog.at_level("WARNING"):
        info = run_score(store, config)
    view = load_train_view(store)
    with pytest.raises(RepresenterFitError) as raised:
        fit_representer_auto(view, config.score)
    best = raised.value.agreement  # the best of the refits tried
    assert 0.3 < best < 0.9
    assert "score: no representer evidence" in caplog.text
    assert "--set score.min_agreement=" in caplog.text  # the setting, by its name
    suspects = store.read_table("scores/suspects.parquet").to_pandas()
    assert sorted(suspects["id"]) == sorted(view.ids)
    assert suspects["rank"].tolist() == list(range(1, 61))
    assert "representer" not in suspects.columns and "representer" not in info["signals"]
    assert all(len(x) == 0 for x in suspects["support_ids"])
    assert all(len(x) == 0 for x in suspects["oppose_ids"])
    summary = json.loads(store.read_bytes("scores/summary.json"))
    assert f"at most {best:.1%}" in summary["representer_skipped"]
    assert "below score.min_agreement=90.0%" in summary["representer_skipped"]
    assert summary["representer_agreement"] == pytest.approx(best)
    assert summary["representer_reconstruction_error"] is None
    assert info["representer_skipped"] == summary["representer_skipped"]
    assert store.stage_done("score")
    # what `score` prints says so
    monkeypatch.setattr(cli, "_run", lambda args, config: type(
        "R", (), {"score": lambda self, force: info})())
    cli._cmd_score(type("Args", (), {"force": False})(), config)
    out = capsys.readouterr().out
    assert f"no representer evidence (ranked without it): {summary['representer_skipped']}" \
        in out and "lower score.min_agreement" in out


def test_score_force_keeps_the_old_scores_until_the_new_ones_are_complete(tmp_path,
                                                                         monkeypatch):
    # `score --force` removed scores/* and the marker first: a rerun that failed left nothing
    import relabeler.jobs.score as score_job

    store, config = _feature_run(tmp_path)
    config.score.min_agreement = 0.0
    info = run_score(store, config)
    folder = tmp_path / "run" / "scores"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert "eval_suspects.parquet" in before and "summary.json" in before
    marker = store.stage_info("score")

    def fail(*args, **kwargs):
        raise StageError("score: coverage: no luck")

    monkeypatch.setattr(score_job, "score_coverage", fail)
    with pytest.raises(StageError, match="no luck"):
        run_score(store, config, force=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert store.stage_info("score") == marker and store.stage_done("score")
    monkeypatch.undo()
    # a redo without eval features: the new tables in, the old eval ranking gone
    store.remove("_stages/extract.eval.json")
    again = run_score(store, config, force=True)
    assert again["eval_audit"] == {"ranked": 0} and info["eval_audit"]["ranked"] == 20
    names = {p.name for p in folder.iterdir()}
    assert "eval_suspects.parquet" not in names and "summary.json" in names
    assert names == set(before) - {"eval_suspects.parquet"}
    assert store.stage_done("score")
    # the folder swapped in whole holds every output of the stage and nothing else
    assert all(a.startswith(f"{score_job.FOLDER}/") for a in score_job.ARTIFACTS)


def test_every_row_keeps_its_nearest_training_rows_whatever_its_rank():
    # the panel's similar examples: representer support existed for the top evidence_top
    # only, so a random control below it showed none; every row now has its neighbours
    from relabeler.jobs.score import score_suspects

    rng = np.random.default_rng(3)
    n, d = 120, 8
    true = np.arange(n) % 3
    features = (rng.normal(size=(3, d))[true] * 2 + rng.normal(size=(n, d))).astype(np.float32)
    probs = np.full((n, 3), 0.1, np.float32)
    probs[np.arange(n), true] = 0.8
    labels = np.where(np.arange(n) % 10 == 0, (true + 1) % 3, true)
    ids = np.array([f"r{i:03d}" for i in range(n)], dtype=object)
    view = TrainView(ids=ids, labels=labels, features=features, probs=probs, pred=true,
                     classes=["a", "b", "c"], oof_probs=None, margins=None)
    frame, _ = score_suspects(view, ScoreConfig(k=4, evidence_top=10, min_agreement=0.0))
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -np.inf)
    nearest = np.argsort(-cosine, axis=1, kind="stable")[:, :4]
    frame = frame.set_index("id").loc[ids]
    assert [list(x) for x in frame["neighbor_ids"]] == [list(ids[row]) for row in nearest]
    np.testing.assert_allclose(np.stack(frame["neighbor_scores"].to_numpy()),
                               np.take_along_axis(cosine, nearest, axis=1), atol=1e-5)
    # representer evidence stays with the top evidence_top rows
    assert (frame["support_ids"].map(len) > 0).sum() == 10


def test_score_refuses_eval_and_pool_features_of_an_earlier_model(tmp_path):
    # train ran again and only the training split was extracted since: score dropped the
    # stale eval and pool features without a word (no eval audit, no coverage) and recorded
    # them as its upstream, so its own marker was stale at once and attribute said "run score"
    # for ever
    import time

    from relabeler.jobs.attribute import run_attribute

    store, config = _feature_run(tmp_path)
    config.score.min_agreement = 0.0
    run_score(store, config)
    before = store.stage_info("score")
    time.sleep(0.01)  # a later finished_at
    store.mark_done("train")
    store.mark_done("extract.train")
    with pytest.raises(StageError) as refused:
        run_score(store, config)
    message = str(refused.value)
    assert "eval and pool features of the current model" in message
    assert "features/eval: train finished again since extract.eval ran" in message
    assert f"relabeler extract --run {store.uri} --splits eval,pool" in message
    assert store.stage_info("score") == before  # the previous scores' marker is kept
    with pytest.raises(StageError, match=r"attribute needs the scored queue \(extract.eval is "
                                         r"stale: train finished again since extract.eval "
                                         r"ran\): run `relabeler extract --run .*` first, then "
                                         r"score"):
        run_attribute(store, config)
    # one split re-extracted: the other is named alone
    store.mark_done("extract.eval")
    with pytest.raises(StageError, match=r"needs the pool features .* --splits pool\b"):
        run_score(store, config)
    store.mark_done("extract.pool")
    info = run_score(store, config)
    assert info["eval_audit"]["ranked"] == 20 and store.stage_done("score")


def _words_view(seed: int, *, lopsided: bool = False, separation: float = 0.3):
    """Training rows whose words tell the classes apart, and whose encoder barely does (at
    ``separation`` 0.3); 10% of the labels wrong (to any other class), or 30% of a's to b
    when ``lopsided``."""
    from tests.selectors.test_lexical import texts_of

    rng = np.random.default_rng(seed)
    n, d = 600, 16
    true = rng.integers(0, 3, n)
    centers = rng.normal(size=(3, d))
    features = (centers[true] * separation + rng.normal(size=(n, d))).astype(np.float32)
    labels = true.copy()
    if lopsided:
        wrong = (true == 0) & (rng.random(n) < 0.3)
        labels[wrong] = 1
    else:
        wrong = rng.random(n) < 0.1
        labels[wrong] = (true[wrong] + rng.integers(1, 3, wrong.sum())) % 3
    logits = features @ centers.T
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs = (probs / probs.sum(1, keepdims=True)).astype(np.float32)
    view = TrainView(ids=np.array([f"r{i}" for i in range(n)], dtype=object), labels=labels,
                     features=features, probs=probs, pred=probs.argmax(1),
                     classes=["a", "b", "c"], oof_probs=probs, margins=None,
                     texts=texts_of(true, seed + 1))
    return view, labels != true


def test_the_words_vote_in_the_queue_where_the_encoder_cannot_tell():
    from sklearn.metrics import average_precision_score

    from relabeler.jobs.score import score_suspects

    view, flipped = _words_view(30)
    with_words, summary = score_suspects(view, ScoreConfig(k=5))
    without, summary_without = score_suspects(view, ScoreConfig(k=5, words=False))
    assert "words_margin" in summary["signals"]
    assert "words_margin" not in summary_without["signals"]
    assert "words_margin" not in without.columns

    def auprc(frame):
        score = frame.set_index("id")["suspect_score"].reindex(view.ids)
        return average_precision_score(flipped, score)
    assert auprc(without) < 0.6 and auprc(with_words) > auprc(without) + 0.2  # .43 -> .86
    # a wrong label's words name its true class: the reason says so, with the class and the
    # words of the text that point there (each class has its own four words, texts_of)
    from tests.selectors.test_lexical import WORDS

    phrase = "its words point to another class: "
    top = with_words.head(int(flipped.sum()))
    said = [(row.given_label, reason) for row in top.itertuples()
            for reason in row.reasons if reason.startswith(phrase)]
    assert len(said) > 0.5 * len(top)
    named = [reason[len(phrase):].split(" (") for _, reason in said]
    assert all(cls in "abc" and cls != given
               for (given, _), (cls, *_) in zip(said, named, strict=True))
    shown = [(cls, words.rstrip(")").split(", ")) for cls, *rest in named for words in rest]
    assert len(shown) == len(said)  # every one names words
    # nearly every term a word of the named class's, or a pair holding one ("refund today")
    assert np.mean([bool(set(term.split()) & set(WORDS["abc".index(cls)]))
                    for cls, words in shown for term in words]) > 0.9
    import pyarrow as pa

    from relabeler import artifacts
    table = artifacts.SUSPECTS.conform(pa.Table.from_pandas(with_words, preserve_index=False))
    assert table.schema.field("words_margin").type == pa.float32()


def test_the_words_do_not_vote_under_class_conditional_noise():
    from relabeler.jobs.score import fit_view_noise, score_suspects

    view, _ = _words_view(31, lopsided=True, separation=3.0)
    cfg = ScoreConfig(k=5)
    assert fit_view_noise(view, cfg).kind == "class_conditional"
    frame, summary = score_suspects(view, cfg)
    assert "words_margin" not in summary["signals"]
    off, _ = score_suspects(view, ScoreConfig(k=5, words=False))
    assert frame["id"].tolist() == off["id"].tolist()
    # the same rows under one flip rate: the words vote
    _, uniform = score_suspects(view, ScoreConfig(k=5, noise_model="uniform"))
    assert "words_margin" in uniform["signals"]
