"""The queue's order on a Label Studio that keeps its data in PostgreSQL, as production
deployments do (the other real-server tests run it on SQLite, its default).

Label Studio sorts a Data Manager column of task data as text unless the tab's
``columnsDisplayType`` calls it a Number. SQLite compares JSON numbers as numbers either way;
PostgreSQL compares the text, so the "Priority queue" tab served priority 10 before 2. Debian's
PostgreSQL (``make test`` installs it where it is missing) runs on loopback for this module;
without it the test is skipped, except under CI, where that is a failure.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from relabeler.plugin.client import StudioClient
from relabeler.plugin.push import push
from relabeler.plugin.server import (
    Credentials,
    _kill_group,
    free_port,
    healthy,
    server_env,
    studio_executable,
)
from tests.plugin.synthetic import make_run

# a cold `label-studio init` on PostgreSQL takes about a minute here, a start about 10 s
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PG_BIN_ENV = "RELABELER_PG_BIN"  # the folder of initdb and pg_ctl, where they are elsewhere
DATABASE, ROLE = "labelstudio", "relabeler"
TOKEN = "5e1f" * 10


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _pg_bin() -> Path | None:
    given = os.environ.get(PG_BIN_ENV)
    found = [given] if given else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if not given and shutil.which("initdb"):
        found.append(str(Path(shutil.which("initdb")).parent))
    return next((Path(b) for b in found if (Path(b) / "initdb").exists()
                 and (Path(b) / "pg_ctl").exists()), None)


def _as_owner(owner: str | None, argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, its commands run as ``owner``."""
    return ["runuser", "-u", owner, "--", *argv] if owner else argv


@pytest.fixture(scope="module")
def postgres() -> Iterator[int]:
    """A PostgreSQL server on 127.0.0.1 for this module (trust auth, no fsync); its port."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        _missing("PostgreSQL's initdb and pg_ctl were not found (Debian: apt-get install "
                 f"postgresql; or set {PG_BIN_ENV})")
    owner = None
    root = Path(tempfile.mkdtemp(prefix="relabeler-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres").pw_name
        except KeyError:
            _missing("running as root, and there is no `postgres` user to run PostgreSQL as")
        shutil.chown(root, user=owner)
    port = free_port(55432)
    data = root / "data"
    try:
        subprocess.run(_as_owner(owner, [str(bin_dir / "initdb"), "-D", str(data), "-A",
                                         "trust", "-U", ROLE, "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        subprocess.run(_as_owner(owner, [
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
            "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]),
            check=True, capture_output=True, timeout=120)
        subprocess.run(_as_owner(owner, [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p",
                                         str(port), "-U", ROLE, DATABASE]),
                       check=True, capture_output=True, timeout=60)
        yield port
    finally:
        subprocess.run(_as_owner(owner, [str(bin_dir / "pg_ctl"), "-D", str(data), "-m",
                                         "immediate", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def studio_on_postgres(postgres, tmp_path_factory) -> Iterator[str]:
    """Label Studio 1.23 on the module's PostgreSQL; its URL (admin token :data:`TOKEN`)."""
    data = tmp_path_factory.mktemp("ls-postgres")
    credentials = Credentials(username="admin@relabeler.local", password="admin-Pass-123",
                              token=TOKEN)
    env = {**server_env(data, credentials), "DJANGO_DB": "default", "POSTGRE_NAME": DATABASE,
           "POSTGRE_USER": ROLE, "POSTGRE_PASSWORD": "", "POSTGRE_HOST": "127.0.0.1",
           "POSTGRE_PORT": str(postgres)}
    exe = str(studio_executable())
    with open(data / "label-studio.log", "ab") as out:
        subprocess.run([exe, "init", "--quiet", "--no-browser", "--data-dir", str(data),
                        "--internal-host", "127.0.0.1", "--enable-legacy-api-token"],
                       env=env, cwd=data, stdout=out, stderr=subprocess.STDOUT, check=True,
                       timeout=600)
        port = free_port(18600)
        proc = subprocess.Popen([exe, "start", "--no-browser", "--data-dir", str(data),
                                 "--internal-host", "127.0.0.1", "--port", str(port)],
                                env=env, cwd=data, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while not healthy(url, timeout=1.0):
            assert proc.poll() is None, f"Label Studio exited; see {data / 'label-studio.log'}"
            assert time.monotonic() < deadline, "Label Studio did not answer on /health"
            time.sleep(0.5)
        yield url
    finally:
        _kill_group(proc.pid)


def test_the_priority_tab_serves_the_queue_in_number_order_on_postgres(studio_on_postgres,
                                                                        tmp_path):
    store = make_run(str(tmp_path / "run"), n_train=120, n_pool=0, n_acquire=0)
    # a NUL in the texts of a dataset made before `relabeler data` refused it: PostgreSQL
    # cannot store it, so push shows it as U+FFFD (before: the whole batch answered 500)
    train = store.read_table("dataset/train.parquet").to_pandas()
    train.loc[::5, "text"] += "\x00 tail"
    store.write_table("dataset/train.parquet", pa.Table.from_pandas(train, preserve_index=False))
    client = StudioClient(studio_on_postgres, TOKEN)
    result = push(store, client, project_title="queue on postgres", budget=30)
    http = httpx.Client(base_url=studio_on_postgres, timeout=60,
                        headers={"Authorization": f"Token {TOKEN}"})
    views = http.get("/api/dm/views/", params={"project": result.project_id}).json()
    (view_id,) = [v["id"] for v in views if v["data"].get("title") == "Priority queue"]
    listed = http.get("/api/tasks/", params={"project": result.project_id, "view": view_id,
                                             "page_size": 100, "fields": "task_only"}).json()
    # before: 1000, 10000, 11000, ..., 19000, 2000, 20000, ...
    assert [t["data"]["priority"] for t in listed["tasks"]] == list(range(1000, 31_000, 1000))
    assert sum("\ufffd tail" in t["data"]["text"] for t in listed["tasks"]) >= 1
