import re

import pytest

from relabeler.config import ConfigError, RunConfig, apply_overrides, load_config
from relabeler.config_template import render_template


def test_defaults_without_a_file():
    config = load_config(None)
    assert config.data.source == "sms-spam"
    assert config.train.mode == "auto"
    assert config.extract.splits == ["train", "eval", "pool"]


def test_toml_overrides_defaults(tmp_path):
    path = tmp_path / "relabeler.toml"
    path.write_text('run_dir = "runs/x"\n[train]\nepochs = 5\nlearning_rate = 1\n'
                    '[extract]\nsplits = ["train"]\n')
    config = load_config(path)
    assert config.run_dir == "runs/x"
    assert config.train.epochs == 5
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)
    assert config.extract.splits == ["train"]
    assert config.data.source == "sms-spam"


def test_unknown_key_names_the_key_and_suggests(tmp_path):
    path = tmp_path / "relabeler.toml"
    path.write_text("[train]\nepoch = 3\n")
    with pytest.raises(ConfigError, match=r"relabeler.toml: unknown key 'train.epoch' "
                                          r"\(did you mean 'train.epochs'\?\)"):
        load_config(path)


def test_unknown_section(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[trian]\nepochs = 3\n")
    with pytest.raises(ConfigError, match=r"c.toml: unknown key 'trian' \(did you mean 'train'"):
        load_config(path)


def test_wrong_type_names_key_and_value(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[train]\nepochs = "three"\n')
    with pytest.raises(ConfigError, match=r"c.toml: train.epochs: input should be a valid "
                                          r"integer, got str 'three'"):
        load_config(path)


def test_bool_is_not_an_int(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nfolds = true\n")
    with pytest.raises(ConfigError, match="train.folds: input should be a valid integer, got "
                                          "bool True"):
        load_config(path)


def test_choices_are_checked(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[train]\nmode = "fast"\n')
    with pytest.raises(ConfigError, match="train.mode: input should be 'auto', 'full' or "
                                          "'head', got str 'fast'"):
        load_config(path)


def test_invalid_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_missing_file():
    with pytest.raises(ConfigError, match="nope.toml: config file not found"):
        load_config("nope.toml")


def test_set_assignments_and_flags():
    config = apply_overrides(RunConfig(), {"train.epochs": 7, "data.source": None},
                             ["data.noise_rate=0.2", "extract.splits=train,eval",
                              "model.name=some/model"])
    assert config.train.epochs == 7
    assert config.data.source == "sms-spam"  # None flags do not override
    assert config.data.noise_rate == 0.2
    assert config.extract.splits == ["train", "eval"]
    assert config.model.name == "some/model"


def test_set_takes_a_quoted_string_as_toml_does_and_names_a_bad_list_element():
    config = apply_overrides(RunConfig(), None, ['data.source="my data.csv"',
                                                 "studio.project_title='a \"b\"'"])
    assert (config.data.source, config.studio.project_title) == ("my data.csv", 'a "b"')
    assert apply_overrides(RunConfig(), None, ['data.source="x']).data.source == '"x'
    with pytest.raises(ConfigError, match=r"^--set: extract\.splits\.1: input should be "):
        apply_overrides(RunConfig(), None, ["extract.splits=train,bogus"])
    # the TOML array the template writes is taken as it is (it was split at its commas)
    config = apply_overrides(RunConfig(), None, ['extract.splits=["train", "eval"]'])
    assert config.extract.splits == ["train", "eval"]
    with pytest.raises(ConfigError, match=r"^--set: extract\.splits\.1: input should be "):
        apply_overrides(RunConfig(), None, ["extract.splits=['train', 'bogus']"])
    with pytest.raises(ConfigError, match=r"^--set: extract\.splits: input should be a valid "
                                          r"list"):
        apply_overrides(RunConfig(), None, ['extract.splits=["train"'])


def test_set_wrong_type():
    with pytest.raises(ConfigError, match="--set: train.epochs: input should be a valid "
                                          "integer, got str 'x'"):
        apply_overrides(RunConfig(), None, ["train.epochs=x"])


def test_set_without_equals():
    with pytest.raises(ConfigError, match="expected section.key=value"):
        apply_overrides(RunConfig(), None, ["train.epochs"])


def test_template_round_trips_to_defaults(tmp_path):
    path = tmp_path / "relabeler.toml"
    path.write_text(render_template())
    assert load_config(path) == RunConfig()
    assert "# Training epochs" in path.read_text()


@pytest.mark.parametrize("toml, message", [
    ("[data]\neval_fraction = 1.0\n", "data.eval_fraction: input should be less than 1, got "
                                       "float 1.0"),
    ("[score]\nk = 0\n", "score.k: input should be greater than or equal to 1, got int 0"),
    ("[studio]\nproject_title = '" + "x" * 51 + "'\n", "studio.project_title: string should "
                                                    "have at most 50 characters"),
    ("[studio]\nbatch_size = 1001\n", "studio.batch_size: input should be less than or equal "
                                       "to 1000"),
    ("[extract]\nsplits = ['train', 'test']\n", r"extract.splits.1: input should be 'train', "
                                                  r"'eval' or 'pool', got str 'test'"),
    ("[train]\nfolds = 1\n", r"\[train\] folds must be 0 \(none\) or >= 2, got 1"),
    ("[data]\nsplit_col = 'split'\npool_source = 'p.csv'\n",
     r"\[data\] split_col cannot be combined with eval_source or pool_source"),
    ("[score]\nmethod = 'ensemble'\n", r"unknown key 'score.method'"),
    ("[score]\nnoise_model = 'class_conditional'\n", "score.noise_model: input should be "
                                                     "'auto', 'uniform' or 'none'"),
])
def test_ranges_choices_and_checks_across_keys_name_the_key(tmp_path, toml, message):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=f"c.toml: {message}"):
        load_config(path)


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nepochs = -1\nbatch_size = 0\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value) == (
        "c.toml: train.epochs: input should be greater than or equal to 0, got int -1; "
        "c.toml: train.batch_size: input should be greater than or equal to 1, got int 0"
        .replace("c.toml", str(path)))


def test_overrides_are_validated_together_and_name_their_origin():
    config = RunConfig()
    config.data.eval_fraction = 0.7
    # pool 0.2 then eval 0.1: valid together, though pool 0.2 with the old eval 0.7 is not
    apply_overrides(config, {"data.eval_fraction": 0.1}, ["data.pool_fraction=0.2"])
    assert (config.data.eval_fraction, config.data.pool_fraction) == (0.1, 0.2)
    with pytest.raises(ConfigError, match=r"^flag: score.k: input should be greater than or "
                                          r"equal to 1, got int 0$"):
        apply_overrides(config, {"score.k": 0})
    with pytest.raises(ConfigError, match=r"^--set: unknown key 'train.epoch' \(did you mean "
                                          r"'train.epochs'\?\)$"):
        apply_overrides(config, None, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="keys look like section.key"):
        apply_overrides(config, None, ["train.epochs.x=3"])
    assert config.score.k == 10 and config.train.epochs == 0  # a failed override changes nothing


def test_a_check_across_keys_names_the_file_that_set_one_and_the_flag_that_set_the_other(
        tmp_path):
    # "flag: [data] eval_fraction + pool_fraction must be < 1" sent the user looking for a
    # flag that set eval_fraction, which their file had set
    path = tmp_path / "r.toml"
    path.write_text('run_dir = "x"\n[data]\neval_fraction = 0.6\nsource = "a.csv"\n')
    config = load_config(path)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}, flag: \[data\] "
                                          r"eval_fraction \+ pool_fraction must be < 1"):
        apply_overrides(config, {"data.pool_fraction": 0.5, "data.text_col": "body"},
                        earlier=str(path))
    with pytest.raises(ConfigError, match=r"^--set: \[data\] eval_fraction"):
        apply_overrides(config, None, ["data.eval_fraction=0.6", "data.pool_fraction=0.5"],
                        earlier=str(path))
    with pytest.raises(ConfigError, match=r"^config, flag: \[data\] eval_fraction"):
        apply_overrides(config, {"data.pool_fraction": 0.5})


def test_a_mask_rate_of_zero_is_refused_it_would_mask_nothing():
    with pytest.raises(ConfigError, match=r"^flag: train.debias_mask_rate: input should be "
                                          r"greater than 0, got float 0.0$"):
        apply_overrides(RunConfig(), {"train.debias_mask_rate": 0.0})


def test_code_that_sets_a_key_is_checked_too():
    config = RunConfig()
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        config.train.batch_size = 0
    with pytest.raises(ValueError, match="no attribute 'method'"):
        config.score.method = "ensemble"


@pytest.mark.parametrize("value", ["inf", "+inf", "nan", "-nan"])
def test_inf_and_nan_are_refused_and_name_the_key(tmp_path, value):
    path = tmp_path / "c.toml"
    path.write_text(f"[train]\nlearning_rate = {value}\n")
    with pytest.raises(ConfigError, match=r"c.toml: train.learning_rate: input should be a "
                                          r"finite number, got float"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"^--set: train.learning_rate: input should be a "
                                          r"finite number"):
        apply_overrides(RunConfig(), None, [f"train.learning_rate={value}"])


def test_a_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'[data]\nsource = "good.csv"\n[train]\nepochs = 2\n')
    config = load_config(path)
    assert (config.data.source, config.train.epochs) == ("good.csv", 2)


def test_a_key_set_by_a_file_flag_or_code_stays_told_apart_from_its_default(tmp_path):
    config = apply_overrides(RunConfig(), {"data.id_col": "id"})
    assert "id_col" in config.data.model_fields_set
    config = RunConfig()
    config.data.source = "x.csv"
    apply_overrides(config, {"train.epochs": 2}, ["score.k=3"])
    assert config.data.model_fields_set == {"source"}
    assert (config.data.source, config.data.id_col) == ("x.csv", "id")
    path = tmp_path / "c.toml"
    path.write_text("[data]\nseed = 4\n")
    layered = load_config(path, base=config)
    assert layered.data.model_fields_set == {"source", "seed"}
    assert (layered.train.epochs, layered.score.k, layered.data.seed) == (2, 3, 4)


def test_a_seed_beyond_64_bits_is_refused_naming_the_key():
    # torch failed on it with "Overflow when unpacking long long", after the data stage ran
    with pytest.raises(ConfigError, match=r"^--set: train.seed: input should be less than or "
                                          r"equal to 9223372036854775807"):
        apply_overrides(RunConfig(), None, ["train.seed=99999999999999999999"])
    assert apply_overrides(RunConfig(), None, [f"data.seed={2**63 - 1}"]).data.seed == 2**63 - 1
