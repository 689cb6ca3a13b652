"""simulate --shortcut: parsing, planting into the training split, and the rank found by score."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from relabeler import artifacts
from relabeler.cli import main
from relabeler.config import ScoreConfig
from relabeler.errors import ConfigError
from relabeler.jobs.shortcuts import score_shortcuts
from relabeler.jobs.simulate import simulation_config
from relabeler.jobs.simulate_shortcut import (
    ShortcutSpec,
    check_planted,
    insert_token,
    parse_shortcut,
    plant_shortcut,
    remove_token,
    shortcut_accuracy,
    shortcut_result,
)
from relabeler.selectors.shortcuts import contains_token, word_tokens
from relabeler.store import RunStore
from tests.conftest import synthetic_frame


def test_the_spec_is_parsed_and_class_names_may_hold_colons():
    assert parse_shortcut("zq:pos:0.5") == ShortcutSpec("zq", "pos", 0.5)
    assert parse_shortcut("ZQ-tag:a:b:1") == ShortcutSpec("ZQ-tag", "a:b", 1.0)
    assert parse_shortcut("ZQ-tag:a:b:1").key == "zq tag"


@pytest.mark.parametrize("spec, message", [
    ("zq:pos", "expected TOKEN:CLASS:RATE"),
    (":pos:0.5", "expected TOKEN:CLASS:RATE"),
    ("zq:pos:0", r"RATE must lie in \(0, 1\], got 0.0"),
    ("zq:pos:1.5", r"RATE must lie in \(0, 1\]"),
    ("zq:pos:half", "RATE must be a number"),
    ("!!:pos:0.5", "TOKEN must be one or two words"),
])
def test_a_bad_spec_names_the_flag(spec, message):
    with pytest.raises(ConfigError, match=f"--shortcut: {message}"):
        parse_shortcut(spec)


def test_insert_token_puts_the_token_among_the_words():
    rng = np.random.default_rng(0)
    out = insert_token(["a b c", "d e", "f"], np.array([0, 2]), "zq", rng)
    assert out[1] == "d e"
    assert sorted(out[0].split()) == ["a", "b", "c", "zq"] and out[2] in ("zq f", "f zq")


def _store(tmp_path) -> RunStore:
    store = RunStore(tmp_path / "run")
    frame = synthetic_frame(200, seed=4)
    store.write_table(artifacts.TRAIN.path, pa.Table.from_pandas(frame, preserve_index=False))
    return store


def test_planting_marks_the_rows_and_score_ranks_the_token_first(tmp_path):
    store = _store(tmp_path)
    spec = parse_shortcut("zqtag:neg:0.3")
    info = plant_shortcut(store, spec, seed=0)
    train = store.read_table(artifacts.TRAIN.path).to_pandas()
    assert info["n_planted"] == 30 == int(train["shortcut"].sum())
    has = train["text"].str.split().apply(lambda w: "zqtag" in w)
    assert (has == train["shortcut"]).all() and (train.loc[has, "label"] == "neg").all()
    assert plant_shortcut(store, spec, seed=0) == info  # done once: not planted twice
    assert store.read_table(artifacts.TRAIN.path).to_pandas()["text"].str.count(
        "zqtag").sum() == 30
    score_shortcuts(store, ["neg", "pos"], ScoreConfig(shortcut_min_count=25))
    result = shortcut_result(store, spec, info)
    assert result["rank"] == 1 and result["top"][0] == "zqtag"
    assert result["z"] == pytest.approx(0.5 / np.sqrt(0.25 / 30))


def test_a_class_that_does_not_exist_names_the_flag(tmp_path):
    store = _store(tmp_path)
    with pytest.raises(ConfigError, match="--shortcut: class 'spam' is not in the training "
                                          "data \\(classes: neg, pos\\)"):
        plant_shortcut(store, parse_shortcut("zq:spam:0.5"), seed=0)


@pytest.mark.parametrize("token", ["the", "The", "movie was", "Movie-was"])
def test_a_token_that_already_occurs_in_a_training_text_names_the_flag(tmp_path, token):
    # planted, it would not be "in none of the others", and remove_token could delete an
    # original word from a planted text
    store = _store(tmp_path)
    before = store.read_table(artifacts.TRAIN.path)
    with pytest.raises(ConfigError, match=rf"--shortcut: the token '{token}' already occurs in "
                                          rf"\d+ training texts \(the first: id 's\d+'\); pick a "
                                          rf"token that occurs in none of them"):
        plant_shortcut(store, parse_shortcut(f"{token}:pos:0.5"), seed=0)
    assert not store.stage_done("simulate.shortcut")
    assert store.read_table(artifacts.TRAIN.path).equals(before)


def test_the_cli_refuses_a_bad_rate_before_running(tmp_path, capsys):
    code = main(["simulate", "--data", "sms-spam", "--noise", "0.1", "--out",
                 str(tmp_path / "sim"), "--shortcut", "zq:spam:2", "-q"])
    assert code == 2
    assert "--shortcut: RATE must lie in (0, 1], got 2.0" in capsys.readouterr().err
    assert not (tmp_path / "sim" / "run").exists()


def test_remove_token_undoes_insert_token():
    rng = np.random.default_rng(3)
    texts = ["the cat  sat", "on the mat"]
    planted = insert_token(texts, np.array([0, 1]), "zq", rng)
    assert [remove_token(t, "zq") for t in planted] == ["the cat sat", "on the mat"]
    assert remove_token("no token here", "zq") == "no token here"
    two = insert_token(["hello there friend"], np.array([0]), "zq xv", np.random.default_rng(1))
    assert remove_token(two[0], "zq xv") == "hello there friend"
    assert remove_token("a zq b xv zq xv", "zq xv") == "a zq b xv"


def test_a_run_with_another_plant_is_refused_and_a_new_plant_redoes_the_stages(tmp_path):
    store = _store(tmp_path)
    spec = parse_shortcut("zqtag:neg:0.3")
    assert check_planted(store, spec) is True  # not planted yet: later stages must run again
    assert check_planted(store, None) is False
    plant_shortcut(store, spec, seed=0)
    assert check_planted(store, spec) is False
    with pytest.raises(ConfigError, match="--shortcut: the run in .* was made with --shortcut "
                                          "zqtag:neg:0.3; use --force"):
        check_planted(store, None)
    with pytest.raises(ConfigError, match="--shortcut: the run"):
        check_planted(store, parse_shortcut("zqtag:neg:0.5"))


def test_shortcut_accuracy_runs_on_a_run_scored_for_shortcuts_only(tmp_path, tiny_bert_dir):
    # benchmarks/shortcut_mitigation.py measures runs that stop after score's shortcut step:
    # no train stage, so the classes and the refit mode come from the caller
    store = _store(tmp_path)
    evaluation = synthetic_frame(40, seed=5)
    store.write_table(artifacts.EVAL.path, pa.Table.from_pandas(evaluation, preserve_index=False))
    spec = parse_shortcut("zqtag:neg:0.5")
    plant_shortcut(store, spec, seed=0)
    score_shortcuts(store, ["neg", "pos"], ScoreConfig(shortcut_min_count=25))
    config = simulation_config(data="unused", out=tmp_path, noise=0.0, noise_kind="uniform",
                               seed=0, mode="head")
    config.model.name, config.model.cache_dir = tiny_bert_dir, str(tmp_path / "cache")
    config.train.epochs = 1
    result = shortcut_accuracy(store, config, spec, progress=False, classes=["neg", "pos"],
                               mode="head")
    assert not store.stage_done("train")
    assert result["mitigation"] == "mask" and result["mitigation_tokens"] == ["zqtag"]
    for block in ("accuracy", "anti_accuracy"):
        assert set(result[block]) == {"clean", "shortcut", "mitigated"}
        # 40 eval texts: every accuracy is a whole number of them
        assert all(round(v * 40) == pytest.approx(v * 40) for v in result[block].values())
    assert result["accuracy"]["mitigated"] == result["mitigations"]["mask"]["accuracy"]


def test_shortcut_accuracy_measures_against_the_eval_truth_under_eval_noise(tmp_path,
                                                                            monkeypatch):
    from types import SimpleNamespace

    from relabeler.data import read_split
    from relabeler.jobs import simulate
    from tests.jobs.test_simulate import CueRefitter, eval_noise_run

    store, config = eval_noise_run(tmp_path)
    evaluation = read_split(store.read_table(artifacts.EVAL.path))
    assert evaluation["flipped"].any()
    spec = parse_shortcut("zqtag:neg:0.5")
    plant_shortcut(store, spec, seed=0)
    score_shortcuts(store, ["neg", "pos"], ScoreConfig(shortcut_min_count=25))
    texts = []

    def refitter(store, config, given, classes, progress, *, mode=None):
        texts.extend(given)
        return CueRefitter(given, classes)

    monkeypatch.setattr(simulate, "_refitter", refitter)
    monkeypatch.setattr("relabeler.model.load_tokenizer",
                        lambda name: SimpleNamespace(mask_token="[MASK]"))
    result = shortcut_accuracy(store, config, spec, progress=False, classes=["neg", "pos"],
                               mode="head")
    # a model that is always right is measured right, on the eval split and its anti copy
    assert set(result["accuracy"].values()) == {1.0}
    assert set(result["anti_accuracy"].values()) == {1.0}
    # the token went into the eval texts whose true class is another than the planted one
    anti = texts[-len(evaluation):]
    has = np.array(["zqtag" in t.split() for t in anti])
    np.testing.assert_array_equal(has, (evaluation["true_label"] != "neg").to_numpy())


HANZI = list("我今天很开心天气好手机屏幕坏了电池不耐用股市大涨收盘下跌朋友一起吃饭看电影回家休息")


def test_insert_token_goes_between_the_characters_of_chinese_text():
    """Chinese has no spaces: the token may go inside a clause, at a character boundary, and
    a two-character token is then found as the bigram score counts."""
    texts = ["我今天很开心，天气好。"] * 40
    out = insert_token(texts, np.arange(40), "优惠", np.random.default_rng(0))
    assert contains_token(out, parse_shortcut("优惠:pos:0.5").key).all()
    assert parse_shortcut("优惠:pos:0.5").key == "优 惠"
    assert all(" ".join(t.replace("优惠", "", 1).split()) == texts[0] for t in out)
    inside = [t for t in out if not (t.startswith("优惠") or t.endswith("优惠"))]
    assert len(inside) > 30  # not only at either end of the text
    assert [remove_token(t, "优惠") for t in out] == texts
    # a Latin token next to a Latin word gets a space, so that it stays a word of its own
    mixed = insert_token(["iPhone手机很好"] * 30, np.arange(30), "zq", np.random.default_rng(1))
    assert all(word_tokens(t).count("zq") == 1 for t in mixed)
    assert all([w for w in word_tokens(t) if w != "zq"] == ["iphone", "手", "机", "很", "好"]
               for t in mixed)
    assert "iPhone zq手机很好" in mixed
    assert {remove_token(t, "zq").replace(" ", "") for t in mixed} == {"iPhone手机很好"}


def test_a_token_planted_into_chinese_training_texts_ranks_first_as_the_bigram(tmp_path):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"id": [f"s{i:04d}" for i in range(300)],
                          "text": ["".join(rng.choice(HANZI, size=12)) + "。" for _ in range(300)],
                          "label": ["pos" if i % 2 else "neg" for i in range(300)]})
    store = RunStore(tmp_path / "run")
    store.write_table(artifacts.TRAIN.path, pa.Table.from_pandas(frame, preserve_index=False))
    spec = parse_shortcut("优惠:neg:0.4")
    info = plant_shortcut(store, spec, seed=0)
    train = store.read_table(artifacts.TRAIN.path).to_pandas()
    assert info["n_planted"] == 60 == int(contains_token(train["text"], spec.key).sum())
    score_shortcuts(store, ["neg", "pos"], ScoreConfig(shortcut_min_count=25))
    result = shortcut_result(store, spec, info)
    assert result["rank"] == 1 and result["top"][0] == "优 惠"


def test_a_token_the_model_reads_as_unknown_is_refused_before_any_stage(tmp_path, capsys,
                                                                        tiny_bert_dir):
    source = tmp_path / "zh.csv"
    source.write_text("id,text,label\n" + "".join(
        f"r{i},今天天气{i}很好,{'a' if i % 2 else 'b'}\n" for i in range(40)), encoding="utf-8")
    # MiniLM's English vocabulary lacks both 优 and 惠, and 机 of 手机; it holds 金 and 山
    for token, unknown in (("优惠", "'优', '惠'"), ("手机", "'机'")):
        code = main(["simulate", "--data", str(source), "--noise", "0.1", "--out",
                     str(tmp_path / "sim"), "--shortcut", f"{token}:a:0.5", "-q"])
        assert code == 2
        err = capsys.readouterr().err
        assert (f"--shortcut: the packaged MiniLM reads {unknown} of the token '{token}' as "
                f"unknown ([UNK])") in err
        assert "model.name" in err and "multilingual" in err
        suggested = err.split("(such as ")[1].split(")")[0].replace("'", "").split(" or ")
        assert len(suggested) == 3 and all(len(s) == 2 for s in suggested)
        assert not (tmp_path / "sim" / "run").exists()
    from relabeler.jobs.simulate_shortcut import _known_tokens, check_model_reads
    from relabeler.model import load_tokenizer

    tokenizer = load_tokenizer(tiny_bert_dir)
    for known in _known_tokens(tokenizer, "优惠"):
        assert "[UNK]" not in tokenizer.tokenize(known)
    check_model_reads(parse_shortcut("金山:a:0.5"), tiny_bert_dir)  # seen: no error
    check_model_reads(parse_shortcut("zq:a:0.5"), None)
    with pytest.raises(ConfigError, match=r"--shortcut: the model .*tiny-bert.* reads '优', '惠'"):
        check_model_reads(parse_shortcut("优惠:a:0.5"), tiny_bert_dir)


def test_a_token_at_either_end_of_chinese_text_is_joined_without_a_space():
    texts = ["比分昨天很好。"] * 60
    out = insert_token(texts, np.arange(60), "金山", np.random.default_rng(0))
    assert not [t for t in out if " " in t]  # as between two characters
    assert "金山比分昨天很好。" in out and "比分昨天很好。金山" in out
    assert [remove_token(t, "金山") for t in out] == texts
    # beside a Latin word the space stays, so that the two do not read as one word
    latin = insert_token(["ok 手机"] * 30, np.arange(30), "zq", np.random.default_rng(1))
    assert {"zq ok 手机", "ok 手机zq", "ok zq手机"} <= set(latin)
    assert all(word_tokens(t).count("zq") == 1 for t in latin)
