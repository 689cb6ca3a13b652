"""The local server's files, without a server (the live tests are in test_studio.py)."""

from __future__ import annotations

import os
import stat

from relabeler.plugin.server import write_private


def test_private_files_are_owner_only_even_when_they_existed_wider(tmp_path):
    path = tmp_path / "api-token"
    path.write_text("old", encoding="utf-8")
    os.chmod(path, 0o644)
    assert write_private(path, "t0ken\n") == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="utf-8") == "t0ken\n"
    fresh = write_private(tmp_path / "new", "x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
