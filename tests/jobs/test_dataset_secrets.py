"""data: the password of a source URL is never written to the run folder, logged, or put in an
error message; a run made before that (its marker holds the password) is the same source."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import threading

import pytest

from relabeler.cli import main
from relabeler.config import RunConfig
from relabeler.errors import StageError
from relabeler.jobs.dataset import prepare_dataset
from relabeler.store import RunStore
from tests.conftest import synthetic_frame

PASSWORD = "S3CRETPW"
#: the passwords the server takes for alice (a password may change; "***" is none of them)
PASSWORDS = (PASSWORD, "N3WPASS")


class _Guarded(http.server.SimpleHTTPRequestHandler):
    """Serves files to alice with one of :data:`PASSWORDS` (basic auth), else 401."""

    def _allowed(self) -> bool:
        given = self.headers.get("Authorization", "")
        return any(given == "Basic " + base64.b64encode(f"alice:{p}".encode()).decode()
                   for p in PASSWORDS)

    def send_head(self):
        if not self._allowed():
            self.send_error(401)
            return None
        return super().send_head()

    def log_message(self, *args) -> None:  # the request lines are no part of the test
        pass


@pytest.fixture
def served(tmp_path):
    """A CSV served over HTTP on 127.0.0.1 to alice (:class:`_Guarded`); yields its URL with
    her user and password, and the URL as it should be shown. ``bad.csv`` beside it has a row
    without a text."""
    folder = tmp_path / "web"
    folder.mkdir()
    frame = synthetic_frame(40)
    frame.to_csv(folder / "evil.csv", index=False)
    frame.loc[3, "text"] = ""
    frame.to_csv(folder / "bad.csv", index=False)
    web = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Guarded, directory=str(folder)))
    threading.Thread(target=web.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{web.server_address[1]}"
    try:
        yield f"http://alice:{PASSWORD}@{host}/evil.csv", f"http://alice:***@{host}/evil.csv"
    finally:
        web.shutdown()
        web.server_close()


def _run_folder_text(run) -> str:
    """Every file of the run folder, read as text where it can be (parquet too, as bytes)."""
    return "\n".join(path.read_bytes().decode("utf-8", "replace")
                     for path in sorted(run.rglob("*")) if path.is_file())


def test_the_run_folder_holds_the_source_url_without_its_password(tmp_path, served):
    url, shown = (u.replace("evil.csv", "bad.csv") for u in served)
    run = tmp_path / "run"
    # the bad row goes to rejected.parquet, which names its source
    assert main(["data", "--run", str(run), "--data", url, "--set", "data.on_bad_rows=skip",
                 "-q"]) == 0
    info = json.loads((run / "_stages" / "data.json").read_text())["info"]
    assert info["source"] == shown
    assert info["fingerprint"]["settings"]["source"] == shown
    assert info["fingerprint"]["contents"]["source"].startswith("size:")
    assert info["n_rejected"] == 1
    rejected = RunStore(str(run)).read_table("dataset/rejected.parquet").to_pandas()
    assert list(rejected["source"]) == [shown]
    assert PASSWORD not in _run_folder_text(run)


def test_a_later_stage_names_the_source_without_its_password(tmp_path, served, caplog):
    # `train --run R` after `data --data URL`: the dataset is kept as prepared, and the line
    # that says so named the source with its password
    url, shown = served
    made = RunConfig(run_dir=str(tmp_path / "run"))
    made.data.source = url
    info = prepare_dataset(RunStore(made.run_dir), made)
    later = RunConfig(run_dir=made.run_dir)  # nothing given: the source is the default
    with caplog.at_level("INFO"):
        assert prepare_dataset(RunStore(later.run_dir), later, asked=False) == info
    assert f"data.source = {shown!r}, not given now" in caplog.text
    assert PASSWORD not in caplog.text
    # the config takes the source the dataset was made from, as the marker records it
    assert later.data.source == shown
    # ... and a second stage in the same process keeps it too, without reading the masked URL
    # (it has no password to read the file with: the server refuses it)
    with caplog.at_level("INFO"):
        assert prepare_dataset(RunStore(later.run_dir), later, asked=False) == info
    assert PASSWORD not in caplog.text and "cannot be read now" not in caplog.text


def test_another_source_is_refused_without_printing_the_password(tmp_path, served, capsys):
    url, shown = served
    run = str(tmp_path / "run")
    assert main(["data", "--run", run, "--data", url, "-q"]) == 0
    capsys.readouterr()
    other = tmp_path / "evil.csv"
    synthetic_frame(40).to_csv(other, index=False)
    assert main(["data", "--run", run, "--data", str(other)]) == 2
    err = capsys.readouterr().err
    assert f"data.source was {shown!r}, now {str(other)!r}" in err
    assert f"--set 'data.source={shown}'" in err
    assert PASSWORD not in err


def test_the_same_url_is_the_same_source_whatever_its_password(tmp_path, served):
    # the masked URL is compared: a new password for the same file is no new data
    url, _ = served
    made = RunConfig(run_dir=str(tmp_path / "run"))
    made.data.source = url
    info = prepare_dataset(RunStore(made.run_dir), made)
    again = RunConfig(run_dir=made.run_dir)
    again.data.source = url.replace(PASSWORD, "N3WPASS")
    assert prepare_dataset(RunStore(again.run_dir), again) == info


def _older_marker(tmp_path, url: str, edit) -> tuple[RunConfig, dict]:
    """A run prepared from ``url``, its data marker then edited by ``edit`` (of its info) as an
    older relabeler wrote it; the config and the marker."""
    made = RunConfig(run_dir=str(tmp_path / "run"))
    made.data.source = url
    prepare_dataset(RunStore(made.run_dir), made)
    marker = tmp_path / "run" / "_stages" / "data.json"
    old = json.loads(marker.read_text())
    edit(old["info"])
    marker.write_text(json.dumps(old))
    return made, old


def test_a_marker_made_before_the_masking_is_the_same_source(tmp_path, served, caplog):
    # a run prepared by an older relabeler recorded the URL with its password: the same URL
    # given again is no change (no "prepared from other inputs" refusal), and no message
    # shows the password the old marker holds
    url, shown = served

    def with_password(info):
        info["source"] = info["fingerprint"]["settings"]["source"] = url

    made, old = _older_marker(tmp_path, url, with_password)
    store = RunStore(made.run_dir)

    given = RunConfig(run_dir=made.run_dir)
    given.data.source = url
    assert prepare_dataset(store, given)["n_train"] == old["info"]["n_train"]

    later = RunConfig(run_dir=made.run_dir)  # `train --run R`: no source given
    with caplog.at_level("INFO"):
        prepare_dataset(store, later, asked=False)
    assert f"data.source = {shown!r}, not given now" in caplog.text
    assert PASSWORD not in caplog.text and later.data.source == shown

    elsewhere = RunConfig(run_dir=made.run_dir)
    elsewhere.data.source = str(tmp_path / "other.csv")
    synthetic_frame(40).to_csv(elsewhere.data.source, index=False)
    with pytest.raises(StageError) as refused:
        prepare_dataset(store, elsewhere)
    assert f"data.source was {shown!r}" in str(refused.value)
    assert PASSWORD not in str(refused.value)


def test_a_marker_without_a_fingerprint_names_its_source_masked(tmp_path, served):
    # the oldest markers record only the source (with its password, then)
    url, shown = served

    def oldest(info):
        del info["fingerprint"]
        info["source"] = url

    made, _ = _older_marker(tmp_path, url, oldest)
    store = RunStore(made.run_dir)
    assert prepare_dataset(store, made)["source"] == url  # the same source: kept
    elsewhere = RunConfig(run_dir=made.run_dir)
    elsewhere.data.source = "sms-spam"
    with pytest.raises(StageError) as refused:
        prepare_dataset(store, elsewhere)
    assert f"data.source was {shown!r}, now 'sms-spam'" in str(refused.value)
    assert PASSWORD not in str(refused.value)
