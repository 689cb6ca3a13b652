import pytest

from relabeler.config import ConfigError, RunConfig, apply_overrides, load_config, render_template


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
    with pytest.raises(
        ConfigError, match=r"relabeler.toml.*\[train\].*'epoch'.*did you mean 'epochs'"
    ):
        load_config(path)


def test_unknown_section(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[trian]\nepochs = 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'trian'.*did you mean 'train'"):
        load_config(path)


def test_wrong_type_names_key_and_value(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[train]\nepochs = "three"\n')
    with pytest.raises(ConfigError, match=r"train.epochs: expected int, got str 'three'"):
        load_config(path)


def test_bool_is_not_an_int(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nfolds = true\n")
    with pytest.raises(ConfigError, match="train.folds: expected int, got bool"):
        load_config(path)


def test_choices_are_checked(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[train]\nmode = "fast"\n')
    with pytest.raises(ConfigError, match="train.mode: 'fast' is not one of auto, full, head"):
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


def test_set_wrong_type():
    with pytest.raises(ConfigError, match="train.epochs: expected int, got str 'x'"):
        apply_overrides(RunConfig(), None, ["train.epochs=x"])


def test_set_without_equals():
    with pytest.raises(ConfigError, match="expected section.key=value"):
        apply_overrides(RunConfig(), None, ["train.epochs"])


def test_template_round_trips_to_defaults(tmp_path):
    path = tmp_path / "relabeler.toml"
    path.write_text(render_template())
    assert load_config(path) == RunConfig()
    assert "# Training epochs" in path.read_text()
