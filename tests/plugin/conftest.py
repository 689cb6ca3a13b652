"""One real Label Studio server per test session, started from an initialised template.

The cold init (database migrations, admin user, token) takes a minute or two, so it runs once and
the result is kept as a template: ``$RELABELER_STUDIO_TEMPLATE``, else
``<tmp>/relabeler-studio-template-<version>``. Each session copies the template, starts the
server on a free port on 127.0.0.1 in its own process group, and ends that group when done.
Without the Label Studio virtualenv (``make studio-venv``) the server tests are skipped, except
under CI, where that is a failure.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from relabeler.plugin import server as studio_server
from relabeler.plugin.users import annotator_token


def _template_dir() -> Path:
    default = Path(tempfile.gettempdir(),
                   f"relabeler-studio-template-{studio_server.LABEL_STUDIO_VERSION}")
    return Path(os.environ.get("RELABELER_STUDIO_TEMPLATE", default))


@pytest.fixture(scope="session")
def studio_template() -> Path:
    try:
        studio_server.studio_executable()
    except studio_server.StudioServerError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    template = _template_dir()
    template.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{template}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one session builds it; others wait, then reuse it
        if not studio_server.is_initialised(template):
            building = Path(f"{template}.building")
            shutil.rmtree(building, ignore_errors=True)
            started = time.perf_counter()
            studio_server.init_data_dir(building)
            shutil.rmtree(template, ignore_errors=True)
            building.rename(template)
            print(f"\nLabel Studio template initialised in {time.perf_counter() - started:.0f} s"
                  f" -> {template}")
    return template


@dataclass
class LiveStudio:
    """The session's server; ``restart()`` stops it and starts it again on the same data."""

    data_dir: Path
    url: str
    port: int
    token: str
    password: str
    username: str

    def restart(self) -> None:
        studio_server.stop_server(self.data_dir)
        server = studio_server.start_server(self.data_dir, port=self.port)
        assert server.url == self.url

    def http(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60,
                            headers={"Authorization": f"Token {token or self.token}"})


@pytest.fixture(scope="session")
def studio(studio_template, tmp_path_factory) -> LiveStudio:
    data_dir = tmp_path_factory.mktemp("studio") / "data"
    studio_server.copy_data_dir(studio_template, data_dir)
    server = studio_server.start_server(data_dir)
    live = LiveStudio(data_dir=data_dir, url=server.url, port=server.port,
                      token=server.credentials.token, password=server.credentials.password,
                      username=server.credentials.username)
    try:
        yield live
    finally:
        studio_server.stop_server(data_dir)


def signup(url: str, email: str, password: str) -> str:
    """Create a user through Label Studio's sign-up form; returns their API token."""
    return annotator_token(url, email, password)


@pytest.fixture(scope="session")
def annotators(studio) -> dict[str, str]:
    """Two annotators besides the admin: name -> API token."""
    return {name: signup(studio.url, f"{name}@relabeler.local", "annotate-Pass-123")
            for name in ("alice", "bob")}
