"""The local server's files, without a server (the live tests are in test_studio.py)."""

from __future__ import annotations

import os
import stat

import pytest

from relabeler.plugin.server import (
    CREDENTIALS_FILE,
    StudioServerError,
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
