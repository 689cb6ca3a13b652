"""scores/duplicates.parquet from a run directory, retrain --dedupe and the report's section."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from relabeler.config import RunConfig, ScoreConfig, apply_overrides
from relabeler.errors import ConfigError
from relabeler.jobs.duplicates import duplicate_table, write_duplicates
from relabeler.jobs.retrain import dedupe_training
from relabeler.report.duplicates import duplicates_section, render_duplicates
from relabeler.store import RunStore

CLASSES = ["ham", "spam"]
SPLITS = {
    "train": [("t1", "Free entry to WIN a prize", "spam"),
              ("t2", "free entry to win a  prize", "ham"),    # conflicts with t1
              ("t3", "Are we still on for lunch today?", "ham"),
              ("t4", "see you at the station at noon", "ham"),
              ("t5", "Are we still on for lunch today", "ham")],
    "eval": [("e1", "are we still on for lunch today??", "ham"),  # leaked from t3/t5
             ("e2", "The weather is lovely this morning", "ham"),
             ("e3", "Claim your cash reward now", "spam")],
    "pool": [("p1", "claim your cash reward now", None),        # eval and pool: no leak
             ("p2", "Mom says dinner is at seven", None)],
}


def _store(tmp_path) -> tuple[RunStore, dict]:
    """Dataset splits and feature views: rows of one text lie close in feature space, and
    t4 / e2 are given features equal to t3's although their texts differ."""
    store = RunStore(tmp_path / "run")
    rng = np.random.default_rng(0)
    centres = {}
    views = {}
    for split, rows in SPLITS.items():
        store.write_table(f"dataset/{split}.parquet", pa.table({
            "id": [r[0] for r in rows], "text": [r[1] for r in rows],
            "label": pa.array([r[2] for r in rows], pa.string())}))
        features = []
        for _, text, _ in rows:
            key = "".join(c for c in text.casefold() if c.isalpha())
            if key.startswith(("seeyou", "theweather")):
                key = "arewestillonforlunchtoday"
            centres.setdefault(key, rng.normal(size=16))
            features.append(centres[key] + 1e-4 * rng.normal(size=16))
        views[split] = SimpleNamespace(
            ids=np.array([r[0] for r in rows], dtype=object),
            labels=np.array([CLASSES.index(r[2]) if r[2] else -1 for r in rows]),
            features=np.asarray(features, dtype=np.float32))
    return store, views


def test_groups_span_splits_with_leakage_and_conflicts(tmp_path):
    store, views = _store(tmp_path)
    frame, summary = duplicate_table(store, views, CLASSES, ScoreConfig())
    groups = {g: sorted(rows["id"]) for g, rows in frame.groupby("group_id")}
    assert sorted(groups.values()) == [["e1", "t3", "t5"], ["e3", "p1"], ["t1", "t2"]]
    row = frame.set_index("id")
    assert row.loc["p1", "split"] == "pool" and pd.isna(row.loc["p1", "label"])
    assert row.loc["t1", "label"] == "spam" and row.loc["t2", "label"] == "ham"
    assert row.loc["t1", "text_hash"] == row.loc["t2", "text_hash"] != row.loc["t3", "text_hash"]
    assert row.loc["t1", "similarity"] == 1.0  # an exact duplicate (case and spaces aside)
    assert row.loc["e1", "similarity"] > 0.99  # a near one: its best cosine
    assert summary["eval_leaked_from_train"] == 1  # e1; e3 is grouped with the pool only
    assert summary["conflicting_groups"] == 1       # t1 / t2
    assert summary["near_rejected_by_text"] >= 2   # t4 and e2: same features, other texts
    assert "t4" not in set(frame["id"]) and "e2" not in set(frame["id"])


def test_texts_the_caller_read_are_not_read_again(tmp_path):
    # score reads the eval texts once, for the duplicates and the eval audit's words
    store, views = _store(tmp_path)
    eval_texts = [r[1] for r in SPLITS["eval"]]
    store.remove("dataset/eval.parquet")
    frame, summary = duplicate_table(store, views, CLASSES, ScoreConfig(),
                                     texts={"eval": eval_texts})
    groups = {g: sorted(rows["id"]) for g, rows in frame.groupby("group_id")}
    assert sorted(groups.values()) == [["e1", "t3", "t5"], ["e3", "p1"], ["t1", "t2"]]
    assert summary["eval_leaked_from_train"] == 1


def test_the_table_matches_its_registered_schema(tmp_path):
    store, views = _store(tmp_path)
    write_duplicates(store, views, CLASSES, ScoreConfig())
    table = store.read_table("scores/duplicates.parquet")
    assert table.column_names == ["group_id", "id", "split", "similarity", "label", "text_hash"]
    assert table.num_rows == 7


@pytest.mark.parametrize("value", [0.0, -0.5])
def test_a_cosine_threshold_outside_zero_one_is_a_config_error(tmp_path, value):
    # refused where the config is read: the config took any cosine in [-1, 1], and score
    # stopped only at the duplicates, after the suspects and the coverage were computed
    with pytest.raises(ConfigError, match="score.duplicate_threshold: input should be greater "
                                          "than 0"):
        apply_overrides(RunConfig(), None, [f"score.duplicate_threshold={value}"])
    store, views = _store(tmp_path)
    config = ScoreConfig.model_construct(**{**ScoreConfig().model_dump(),
                                            "duplicate_threshold": value})
    with pytest.raises(ConfigError, match=f"score.duplicate_threshold must lie in \\(0, 1\\], "
                                          f"got {value}"):
        duplicate_table(store, views, CLASSES, config)


@pytest.mark.parametrize("value", [0.0, 1.2])
def test_the_config_refuses_a_text_threshold_outside_zero_one(value):
    with pytest.raises(ValueError, match="duplicate_text_threshold"):
        ScoreConfig(duplicate_text_threshold=value)


def test_dedupe_keeps_one_row_per_group_with_the_resolved_label():
    train = pd.DataFrame({
        "id": ["a1", "a2", "a3", "b1", "b2", "c1", "c2", "c3", "d1", "e1"],
        "label": ["spam", "ham", "ham", "spam", "ham", "ham", "spam", "ham", "ham", "ham"],
        "label_source": ["original", "original", "original", "original", "original",
                         "original", "corrected", "original", "original", "original"]})
    duplicates = pd.DataFrame({
        "group_id": [0, 0, 0, 1, 1, 2, 2, 2, 3, 3],
        # group 3: d1 with an eval row, which is not training data
        "id": ["a3", "a1", "a2", "b2", "b1", "c1", "c2", "c3", "d1", "x-eval"]})
    out, counts = dedupe_training(train, duplicates)
    # a: majority ham, first ham by id a2; b: a tie nobody answered, kept whole (it kept the
    # first by id, b1's spam, a label nothing supports more than ham); c: the people's answer
    # (c2, spam) wins over the majority; d and e: untouched
    assert out["id"].tolist() == ["a2", "b1", "b2", "c2", "d1", "e1"]
    assert out.set_index("id")["label"].to_dict() == {
        "a2": "ham", "b1": "spam", "b2": "ham", "c2": "spam", "d1": "ham", "e1": "ham"}
    assert counts == {"groups": 3, "dropped": 4, "unresolved": 1}


def test_the_report_section_measures_accuracy_without_the_leaked_rows(tmp_path):
    store, views = _store(tmp_path)
    write_duplicates(store, views, CLASSES, ScoreConfig())
    before = pd.DataFrame({"label": ["ham", "ham", "spam"], "pred": ["ham", "spam", "ham"]},
                          index=pd.Index(["e1", "e2", "e3"], name="id"))
    after = pd.DataFrame({"label": ["ham", "ham", "spam"], "pred": ["ham", "ham", "ham"]},
                         index=before.index)
    section = duplicates_section(store, before, after, CLASSES)
    assert section["leaked"] == {"n": 1, "ids": ["e1"]}
    assert section["accuracy"]["before"] == {"all": pytest.approx(1 / 3), "without_leaked": 0.0,
                                             "leaked": 1.0}
    assert section["accuracy"]["after"] == {"all": pytest.approx(2 / 3),
                                            "without_leaked": 0.5, "leaked": 1.0}
    assert section["gain_without_leaked"]["delta"] == pytest.approx(0.5)
    assert section["conflicting"]["n"] == 1
    conflict = section["conflicting"]["top"][0]
    assert conflict["labels"] == {"spam": 1, "ham": 1} and conflict["splits"] == {"train": 2}
    assert conflict["text"] == "Free entry to WIN a prize"
    repeated = section["most_repeated"]
    assert [r["train_copies"] for r in repeated] == [2, 2]
    assert {r["text"] for r in repeated} == {"Free entry to WIN a prize",
                                             "Are we still on for lunch today?"}
    html = render_duplicates(section)
    assert "<b>1</b> of 3 eval samples have a duplicate in the training set" in html
    assert "Groups with conflicting labels (1)" in html and "Free entry to WIN a prize" in html
    assert render_duplicates({}) == ""


def test_an_eval_row_grouped_with_an_acquired_pool_row_is_leaked_for_the_retrained_model(
        tmp_path):
    # e3 and p1 are one text; once p1 is acquired (labelled and trained on) e3 is leaked, and
    # the gain measured on it came from training on its copy
    store, views = _store(tmp_path)
    write_duplicates(store, views, CLASSES, ScoreConfig())
    before = pd.DataFrame({"label": ["ham", "ham", "spam"], "pred": ["ham", "ham", "ham"]},
                          index=pd.Index(["e1", "e2", "e3"], name="id"))
    after = before.assign(pred=["ham", "ham", "spam"])
    assert duplicates_section(store, before, after, CLASSES)["leaked"]["ids"] == ["e1"]
    section = duplicates_section(store, before, after, CLASSES,
                                 trained={"t1", "t2", "t3", "t4", "t5", "p1"})
    assert section["leaked"] == {"n": 2, "ids": ["e1", "e3"]}
    assert section["accuracy"]["after"]["without_leaked"] == 1.0  # e2 alone
    assert section["accuracy"]["after"]["leaked"] == 1.0


def test_the_report_section_is_empty_without_the_artifact(tmp_path):
    store = RunStore(tmp_path / "run")
    frame = pd.DataFrame({"label": ["ham"], "pred": ["ham"]}, index=pd.Index(["e1"]))
    assert duplicates_section(store, frame, frame, CLASSES) == {}


# ---------------------------------------------------------------------------------------------
# the real stages on a tiny BERT: score writes the table, retrain --dedupe uses it, report shows it

@pytest.fixture(scope="module")
def duplicated_run(tmp_path_factory, tiny_bert_dir, ray_session):
    from tests.jobs._scored_run import make_scored_run

    def plant(frame):
        # rows 100..119 repeat rows 20..39: upper-cased (exact) or with a comma (near); the
        # copies of rows 20..23 carry the other label
        for j in range(20):
            source, copy = 20 + j, 100 + j
            text = frame.at[source, "text"]
            frame.at[copy, "text"] = text.upper() if j % 2 == 0 else text.replace(" ", ", ", 1)
            label = frame.at[source, "label"]
            frame.at[copy, "label"] = ({"pos": "neg", "neg": "pos"}[label] if j < 4 else label)

    return make_scored_run(tmp_path_factory.mktemp("duplicates"), tiny_bert_dir, rows=140,
                           flipped=0, epochs=3, acquire_budget=5, evidence_top=10,
                           min_agreement=0.0, edit_frame=plant)


@pytest.mark.slow
def test_score_writes_the_duplicate_groups(duplicated_run):
    store, _, info = duplicated_run
    dups = store.read_table("scores/duplicates.parquet").to_pandas()
    by_id = dups.set_index("id")
    for j in range(20):
        source, copy = f"s{20 + j:04d}", f"s{100 + j:04d}"
        assert by_id.loc[source, "group_id"] == by_id.loc[copy, "group_id"], (source, copy)
        if j % 2 == 0:
            assert by_id.loc[source, "text_hash"] == by_id.loc[copy, "text_hash"]
            assert by_id.loc[source, "similarity"] == 1.0
    splits = {s: store.read_table(f"dataset/{s}.parquet").to_pandas() for s in
              ("train", "eval", "pool")}
    for split, frame in splits.items():
        part = dups[dups["split"] == split]
        assert set(part["id"]) <= set(frame["id"])
        labels = frame.set_index("id")["label"]
        assert (part["label"].fillna("-") == part["id"].map(labels).fillna("-")).all()
    with_train = set(dups.loc[dups["split"] == "train", "group_id"])
    leaked = dups[(dups["split"] == "eval") & dups["group_id"].isin(with_train)]
    assert info["duplicates"]["eval_leaked_from_train"] == len(leaked)
    assert info["duplicates"]["groups"] == dups["group_id"].nunique() >= 20
    assert info["duplicates"]["conflicting_groups"] >= 1


@pytest.mark.slow
def test_score_compares_each_pair_of_texts_once_and_scores_the_same(duplicated_run,
                                                                     similarity_calls):
    # the duplicate-conflict signal and the duplicate table share the text check's answers
    from relabeler.jobs.score import run_score

    store, config, _ = duplicated_run
    before = {name: store.read_table(f"scores/{name}.parquet")
              for name in ("suspects", "duplicates")}
    compared = similarity_calls
    run_score(store, config, force=True)
    assert compared and len(compared) == len(set(compared))
    for name, table in before.items():
        assert store.read_table(f"scores/{name}.parquet").equals(table), name


@pytest.mark.slow
def test_retrain_dedupe_keeps_one_training_row_per_group_and_the_report_shows_leakage(
        duplicated_run):
    from relabeler.jobs.retrain import run_retrain
    from relabeler.report.build import write_report

    store, config, _ = duplicated_run
    train = store.read_table("dataset/train.parquet").to_pandas()
    first = train.iloc[0]
    store.write_table("labels/corrections.parquet", pa.Table.from_pandas(pd.DataFrame(
        {"id": [first["id"]], "old_label": [first["label"]], "new_label": [first["label"]],
         "action": ["keep"]}), preserve_index=False))
    dups = store.read_table("scores/duplicates.parquet").to_pandas()
    in_train = dups[dups["id"].isin(set(train["id"]))]
    sizes = in_train.groupby("group_id").size()
    labels = in_train  # duplicates.parquet carries each row's label
    answered = set(labels.loc[labels["id"] == first["id"], "group_id"])

    def tied(rows):  # labels that tie and nobody answered: the group is kept whole
        counts = rows["label"].value_counts()
        return rows.name not in answered and (counts == counts.max()).sum() > 1

    ties = labels.groupby("group_id").apply(tied, include_groups=False)
    ties = set(ties.index[ties])
    resolved = sizes[(sizes > 1) & ~sizes.index.isin(ties)]
    expected_dropped = int((resolved - 1).sum())
    assert expected_dropped >= 1 and ties  # the planted copies of rows 20..23 tie

    info = run_retrain(store, config, progress=False, dedupe=True)
    assert info["dedupe"] is True and info["deduped"] == expected_dropped
    v1 = RunStore(store.path(f"retrain/v{info['version']}"))
    new_train = v1.read_table("dataset/train.parquet").to_pandas()
    assert len(new_train) == len(train) - expected_dropped == info["n_train_after"]
    kept = in_train[in_train["id"].isin(set(new_train["id"]))]
    kept_sizes = kept.groupby("group_id").size()
    assert (kept_sizes[~kept_sizes.index.isin(ties)] == 1).all()
    assert (kept_sizes[list(ties)] == sizes[list(ties)]).all()
    assert set(kept["group_id"]) == set(in_train["group_id"])
    comparison = v1.read_json("comparison.json")
    assert comparison["dedupe"] == {"groups": int((sizes > 1).sum()),
                                    "dropped": expected_dropped, "unresolved": len(ties)}
    assert len(store.read_table("dataset/train.parquet")) == len(train)  # untouched

    report = write_report(store)
    section = report["duplicates"]
    assert section["leaked"]["n"] == store.stage_info("score")["info"]["duplicates"][
        "eval_leaked_from_train"]
    assert section["n_eval"] == len(store.read_table("dataset/eval.parquet"))
    assert report["corrections"]["deduped"] == expected_dropped
    html = store.path("report/report.html")
    text = open(html).read() if "://" not in html else ""
    assert "Duplicates and leakage" in text and "Most repeated training texts" in text
    assert f"{expected_dropped} duplicate rows dropped (retrain --dedupe)" in text
