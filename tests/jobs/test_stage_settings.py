"""stage_settings: what a finished stage was made with against what is asked now."""

from relabeler.jobs.stage_settings import setting_changes


def _train(**train):
    base = {"mode": "auto", "epochs": 0, "learning_rate": 0.0, "head_learning_rate": 0.0,
            "batch_size": 32}
    return {"train": {**base, **train}}


def test_a_default_asked_by_its_value_is_no_change():
    # `train --epochs 40` on a head model trained with epochs 0 (= 40 in head mode) was
    # refused as "train.epochs was 0, now 40"
    assert setting_changes(_train(), _train(epochs=40), resolved_mode="head") == []
    assert setting_changes(_train(), _train(learning_rate=1e-2, head_learning_rate=1e-2),
                           resolved_mode="head") == []
    assert setting_changes(_train(epochs=40), _train(), resolved_mode="head") == []
    assert setting_changes(_train(), _train(mode="full", epochs=3),
                           resolved_mode="full") == []


def test_a_real_change_is_named_with_what_the_default_came_to():
    assert setting_changes(_train(), _train(epochs=5), resolved_mode="head") == [
        "train.epochs was 40, now 5"]
    # the mode named now decides what its zeros mean: full mode's 3 epochs are not head's 40
    assert setting_changes(_train(), _train(mode="full"), resolved_mode="head") == [
        "train.mode was 'head', now 'full'", "train.epochs was 40, now 3",
        "train.learning_rate was 0.01, now 3e-05"]
    assert setting_changes(_train(batch_size=16), _train(), resolved_mode="head") == [
        "train.batch_size was 16, now 32"]
    # a marker made before the mode was recorded: compared as they are
    assert setting_changes(_train(), _train(epochs=40)) == ["train.epochs was 0, now 40"]


def test_an_auto_model_setting_and_what_it_came_to_are_no_change():
    # a template's model.pool_layers = 0 (4 under mean pooling) then `--set
    # model.pool_layers=4` was refused as a change, as was pooling auto -> mean
    def model(**keys):
        return {"model": {"pooling": "auto", "pool_layers": 0, **keys}}

    came_to = {"model.pooling": "mean", "model.pool_layers": 4}
    assert setting_changes(model(), model(pool_layers=4, pooling="mean"),
                           resolved=came_to) == []
    assert setting_changes(model(pool_layers=4), model(), resolved=came_to) == []
    assert setting_changes(model(), model(pool_layers=2), resolved=came_to) == [
        "model.pool_layers was 4, now 2"]
    assert setting_changes(model(), model(pooling="cls"), resolved=came_to) == [
        "model.pooling was 'mean', now 'cls'"]
    recorded = model()
    setting_changes(recorded, model(pool_layers=4), resolved=came_to)
    assert recorded == model()  # the caller's settings are left as they were


def test_a_url_setting_is_named_without_its_password():
    # the message of a changed setting printed a URL with its password (a model folder given
    # as https://user:password@host/...)
    assert setting_changes({"model": {"name": "https://alice:S3CRETPW@h/m"}},
                           {"model": {"name": "https://alice:N3WPASS@h/other"}}) == [
        "model.name was 'https://alice:***@h/m', now 'https://alice:***@h/other'"]


def test_a_model_url_recorded_with_its_password_matches_the_masked_one_now():
    # markers now record model.name masked; one made before recorded the password
    old = {"model": {"name": "http://u:pw@h/m"}}
    assert setting_changes(old, {"model": {"name": "http://u:***@h/m"}}) == []
    assert setting_changes(old, {"model": {"name": "http://u:***@h/other"}}) == [
        "model.name was 'http://u:***@h/m', now 'http://u:***@h/other'"]
