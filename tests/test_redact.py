"""mask_url: the password of a URL never reaches a log line or an error message."""

from __future__ import annotations

import pytest

from relabeler.redact import is_masked, mask_text, mask_url


@pytest.mark.parametrize(("url", "shown"), [
    ("http://user:pass@host", "http://user:***@host"),
    ("https://admin:p%40ss:w@studio.example.com:8443/api?x=1#f",
     "https://admin:***@studio.example.com:8443/api?x=1#f"),
    ("http://u:p@ss@host:8080/", "http://u:***@host:8080/"),  # the last @ ends the user info
    ("https://TOKEN@host/path", "https://***@host/path"),
    ("http://user:@host", "http://user:***@host"),
    ("http://host:8080/a@b", "http://host:8080/a@b"),  # an @ in the path is not user info
    ("http://host/a@b", "http://host/a@b"),
    # a password with "/", "#" or "?" unquoted: the last @ still ends the user info
    ("http://u:pa/ss@h/x", "http://u:***@h/x"),
    ("http://u:pa#ss@h", "http://u:***@h"),
    ("http://u:pa?ss@h", "http://u:***@h"),
    ("http://127.0.0.1:9090", "http://127.0.0.1:9090"),
    ("user:pass@host:99999", "user:***@host:99999"),  # no scheme, a port that does not parse
    ("", ""),
])
def test_mask_url_hides_the_password_and_keeps_the_rest(url, shown):
    assert mask_url(url) == shown


@pytest.mark.parametrize(("url", "masked"), [
    ("http://alice:***@127.0.0.1:8/x.csv", True),
    ("https://***@host/path", True),
    ("http://u:***@h/a/***", True),
    ("http://alice:S3CRETPW@127.0.0.1:8/x.csv", False),  # the password is still there
    ("http://host/a***@b", False),  # "***" in the path, no user info
    ("http://host/***.csv", False),
    ("s3://bucket/x.csv", False),
    ("sms-spam", False),
])
def test_is_masked_tells_a_url_whose_password_was_masked(url, masked):
    assert is_masked(url) is masked


def test_a_data_source_with_credentials_is_named_masked(tmp_path):
    # a source URL with a password printed it in clear in the data error
    from relabeler.data import load_dataset
    from relabeler.errors import DataError

    with pytest.raises(DataError) as info:
        load_dataset("http://user:s3cr3t@127.0.0.1:9/x.csv")
    assert "s3cr3t" not in str(info.value) and "user:***@127.0.0.1:9/x.csv" in str(info.value)


def test_a_model_url_with_a_password_is_recorded_and_named_masked(tmp_path):
    # train's marker recorded model.name as given (a plain file of the run folder), and a
    # model folder that could not be read named the URL with its password
    from relabeler.config import RunConfig
    from relabeler.errors import ModelError
    from relabeler.jobs.train import training_settings
    from relabeler.model import resolve_model

    url = "http://user:s3cr3t@127.0.0.1:9/models/x"
    config = RunConfig()
    config.model.name = url
    recorded = training_settings(config)
    assert recorded["model"]["name"] == "http://user:***@127.0.0.1:9/models/x"
    assert "s3cr3t" not in repr(recorded)
    with pytest.raises(ModelError) as info:
        resolve_model(url)
    assert "s3cr3t" not in str(info.value) and "user:***@127.0.0.1:9" in str(info.value)


def test_mask_text_masks_every_url_in_a_message():
    text = ("cannot download 'x' from http://u:pw1@h:9/a: see 'https://t0k@host/b', "
            "and s3://bucket/k")
    assert mask_text(text) == ("cannot download 'x' from http://u:***@h:9/a: see "
                               "'https://***@host/b', and s3://bucket/k")
