"""The local server's files, without a server (the live tests are in test_studio.py)."""

from __future__ import annotations

import os
import stat

import pytest

from relabeler.plugin.server import (
    CREDENTIALS_FILE,
    StudioServerError,
    init_data_dir,
    read_credentials,
    write_private,
)


def test_private_files_are_owner_only_even_when_they_existed_wider(tmp_path):
    path = tmp_path / "api-token"
    path.write_text("old", encoding="utf-8")
    os.chmod(path, 0o644)
    assert write_private(path, "t0ken\n") == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="utf-8") == "t0ken\n"
    fresh = write_private(tmp_path / "new", "x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_credentials_are_written_whole_and_a_broken_file_is_a_clear_error(tmp_path,
                                                                          monkeypatch):
    path = tmp_path / CREDENTIALS_FILE
    write_private(path, '{"username": "a", "password": "b", "token": "c"}')
    assert read_credentials(tmp_path).username == "a" and path.stat().st_mode & 0o777 == 0o600

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_private(path, '{"username": "x"}')
    monkeypatch.undo()
    assert read_credentials(tmp_path).username == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == [CREDENTIALS_FILE]
    path.write_text("")
    with pytest.raises(StudioServerError, match=rf"{CREDENTIALS_FILE}: not the credentials "
                                                r"relabeler wrote .*--data-dir"):
        read_credentials(tmp_path)


def test_the_data_dir_and_what_label_studio_writes_in_it_are_owner_only(tmp_path,
                                                                         monkeypatch):
    """Label Studio's database holds the API token, the backend's password and the webhook's
    secret: the folder is 0700 (also one that existed wider) and the server's files 0600."""
    fake = tmp_path / "label-studio"
    fake.write_text("#!/bin/sh\necho db > label_studio.sqlite3\n")  # `init`, in the data dir
    fake.chmod(0o755)
    monkeypatch.setattr("relabeler.plugin.server.studio_executable", lambda venv=None: fake)
    fresh = tmp_path / "fresh" / "data"
    umask = os.umask(0o022)  # what a login shell has
    try:
        init_data_dir(fresh)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    assert stat.S_IMODE((fresh / "label_studio.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE((fresh / CREDENTIALS_FILE).stat().st_mode) == 0o600
    wide = tmp_path / "wide"
    wide.mkdir(mode=0o755)
    wide.chmod(0o755)
    init_data_dir(wide)
    assert stat.S_IMODE(wide.stat().st_mode) == 0o700
    (wide / "label_studio.sqlite3").chmod(0o644)
    wide.chmod(0o755)  # an initialised one from before: fixed when it is used again
    init_data_dir(wide)
    assert stat.S_IMODE(wide.stat().st_mode) == 0o700


def test_a_studio_venv_without_label_studio_names_the_setting(tmp_path, monkeypatch):
    from relabeler.plugin.server import studio_executable

    monkeypatch.delenv("RELABELER_STUDIO_VENV", raising=False)
    with pytest.raises(StudioServerError, match=r"or name the virtualenv that has it with "
                                                r"studio.venv \(now '.*/nothing'\)$"):
        studio_executable(str(tmp_path / "nothing"))


def test_an_installed_relabeler_looks_for_label_studio_in_the_users_data_folder(
        tmp_path, monkeypatch):
    # installed from a wheel, it looked in site-packages/.venv-studio and said `make`
    from relabeler.plugin import server

    site = tmp_path / "site-packages"
    (site / "relabeler").mkdir(parents=True)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert server.default_studio_venv(site / "relabeler") == \
        tmp_path / "data" / "relabeler" / "venv-studio"
    checkout = tmp_path / "checkout"
    (checkout / "relabeler").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text('[project]\nname = "relabeler"\n')
    assert server.default_studio_venv(checkout / "relabeler") == checkout / ".venv-studio"
    (checkout / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert server.checkout_root(checkout / "relabeler") is None
    monkeypatch.setattr(server, "checkout_root", lambda package=None: None)
    monkeypatch.delenv("RELABELER_STUDIO_VENV", raising=False)
    with pytest.raises(StudioServerError) as info:
        server.studio_executable()
    message = str(info.value)
    assert f"not installed at {tmp_path / 'data' / 'relabeler' / 'venv-studio'}:" in message
    assert "make" not in message
