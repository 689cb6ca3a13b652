"""A local Label Studio server for one person or one test session (`relabeler studio up|down`).

Label Studio lives in its own virtual environment (its Django pins clash with the project's):
``$RELABELER_STUDIO_VENV``, else ``.venv-studio`` of the checkout (``make studio-venv`` creates
it), else, for an installed relabeler, ``$XDG_DATA_HOME/relabeler/venv-studio``.

Everything the server writes stays in ``data_dir``: the SQLite database and media, its $HOME, the
credentials (``relabeler-studio.json``) and the API token alone (``api-token``), both mode 0600
and never printed, and, while it runs, ``server.json`` (pid, port, URL) and ``server.log``. The
database holds the same token, the ML backend's password and the webhook's secret, so
``data_dir`` is made 0700 (also one that existed wider) and Label Studio runs with umask 077.
Outbound calls (Sentry, version checks, analytics) are off; it listens on 127.0.0.1 only.

Traps of Label Studio 1.23 handled here: it writes to ``~`` unless HOME and
LABEL_STUDIO_BASE_DATA_DIR are set; it listens on 0.0.0.0 unless told otherwise; it silently
moves to the next port when one is busy (so a free port is chosen here, and the server checked
on that port); a fixed API token works only when legacy tokens are enabled as the organisation
is first created; webhooks and ML backends on loopback need SSRF protection and
ML_BLOCK_LOCAL_IP off.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from relabeler.errors import PluginError
from relabeler.locks import pid_alive

log = logging.getLogger(__name__)

VENV_ENV = "RELABELER_STUDIO_VENV"
LABEL_STUDIO_VERSION = "1.23.2"
#: the Label Studio releases relabeler's whole path was checked against: LABEL_STUDIO_VERSION by
#: every test, 1.22.0 and 1.20.0 by hand (docs/studio.md, "Label Studio versions")
CHECKED_VERSIONS = ("1.20.0", "1.22.0", LABEL_STUDIO_VERSION)
CREDENTIALS_FILE = "relabeler-studio.json"
TOKEN_FILE = "api-token"
STATE_FILE = "server.json"
LOG_FILE = "server.log"
DEFAULT_PORT = 8080
ADMIN_EMAIL = "admin@relabeler.local"


class StudioServerError(PluginError):
    """The local Label Studio cannot be installed, initialised, started or stopped."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    token: str

    def __repr__(self) -> str:  # the password and token never reach a log line
        return f"Credentials(username={self.username!r})"


@dataclass(frozen=True)
class StudioServer:
    url: str
    port: int
    pid: int
    data_dir: str
    credentials: Credentials

    @property
    def credentials_path(self) -> Path:
        return Path(self.data_dir) / CREDENTIALS_FILE

    @property
    def token_path(self) -> Path:
        """A file holding the API token alone (``$(cat PATH)`` for other tools), mode 0600."""
        return Path(self.data_dir) / TOKEN_FILE


def checkout_root(package: Path | None = None) -> Path | None:
    """The relabeler checkout this package lies in (its ``pyproject.toml`` names the
    project); None where it was installed (into site-packages)."""
    root = (package or Path(__file__).resolve().parents[1]).parent
    try:
        project = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    return root if re.search(r'(?m)^name = "relabeler"$', project) else None


def default_studio_venv(package: Path | None = None) -> Path:
    """Where Label Studio's virtualenv is looked for when none is named: ``.venv-studio`` of
    the checkout (``make studio-venv`` makes it), else the user's data folder
    (``$XDG_DATA_HOME/relabeler/venv-studio``, ``~/.local/share/...`` without it), never
    inside an installed package."""
    root = checkout_root(package)
    if root is not None:
        return root / ".venv-studio"
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "relabeler" / "venv-studio"


def studio_venv(venv: str | os.PathLike | None = None) -> Path:
    """The Label Studio virtualenv: ``venv``, else $RELABELER_STUDIO_VENV, else
    :func:`default_studio_venv`."""
    chosen = venv or os.environ.get(VENV_ENV) or default_studio_venv()
    return Path(chosen).expanduser().resolve()


def studio_executable(venv: str | os.PathLike | None = None) -> Path:
    exe = studio_venv(venv) / "bin" / "label-studio"
    if not exe.exists():
        where = f"now {str(venv)!r}" if venv else f"or {VENV_ENV}; neither is set"
        make = "`make studio-venv`, or " if checkout_root() is not None else ""
        raise StudioServerError(
            f"Label Studio is not installed at {exe.parent.parent}: run {make}python3 -m venv "
            f"{exe.parent.parent} && {exe.parent}/pip install "
            f"label-studio=={LABEL_STUDIO_VERSION}; or name the virtualenv that has it with "
            f"studio.venv ({where})")
    return exe


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    # Label Studio checks "localhost" by connecting; a listener elsewhere would make it move on
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def free_port(start: int = DEFAULT_PORT, tries: int = 200) -> int:
    """The first free port from ``start``; 0 asks the OS for any free port."""
    if start == 0:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    for port in range(start, start + tries):
        if port_is_free(port):
            return port
    raise StudioServerError(f"no free port in {start}..{start + tries - 1}")


def server_env(data_dir: Path, credentials: Credentials | None = None) -> dict[str, str]:
    """The environment Label Studio runs with: every path inside ``data_dir``, no outbound
    calls, legacy tokens and loopback webhooks allowed."""
    home = data_dir / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LABEL_STUDIO_", "DJANGO_", "VIRTUAL_ENV", "PYTHON"))}
    env.update({
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "LABEL_STUDIO_SSRF_PROTECTION_ENABLED": "false",
        "LABEL_STUDIO_ML_BLOCK_LOCAL_IP": "false",
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LOG_LEVEL": "WARNING",
    })
    if credentials is not None:
        env.update({"LABEL_STUDIO_USERNAME": credentials.username,
                    "LABEL_STUDIO_PASSWORD": credentials.password,
                    "LABEL_STUDIO_USER_TOKEN": credentials.token})
    return env


def write_private(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path``, readable and writable by its owner only (0600), also when
    the file existed with a wider mode."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:  # beside it, then renamed: a failed write leaves the old file whole
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_credentials(data_dir: str | os.PathLike) -> Credentials | None:
    path = Path(data_dir) / CREDENTIALS_FILE
    if not path.exists():
        return None
    try:
        return Credentials(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise StudioServerError(
            f"{path}: not the credentials relabeler wrote ({exc}): restore the file, or "
            f"start a server on a new data folder (`relabeler studio up --data-dir DIR`)"
            ) from None


def is_initialised(data_dir: str | os.PathLike) -> bool:
    return read_credentials(data_dir) is not None


def private_dir(path: Path) -> None:
    """Create ``path`` readable by its owner only (0700), or make an existing one so."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        log.info("making %s readable by its owner only (0700): Label Studio's database in it "
                 "holds the API token and the backend's credentials", path)
        path.chmod(0o700)


def init_data_dir(data_dir: str | os.PathLike, *, venv: str | os.PathLike | None = None,
                  timeout: float = 900) -> Credentials:
    """Create the database, the admin user and its API token in ``data_dir`` (a cold init
    takes about a minute or two); a no-op when already initialised, but for the folder's mode
    (0700, see the module docstring). Returns the credentials."""
    data = Path(data_dir).resolve()
    private_dir(data)
    existing = read_credentials(data)
    if existing is not None:
        return existing
    exe = studio_executable(venv)
    credentials = Credentials(username=ADMIN_EMAIL, password=secrets.token_urlsafe(12),
                              token=secrets.token_hex(20))
    started = time.perf_counter()
    log.info("initialising Label Studio in %s (about 1-2 minutes the first time)", data)
    with open(data / LOG_FILE, "ab") as out:
        proc = subprocess.run(
            [str(exe), "init", "--quiet", "--no-browser", "--data-dir", str(data),
             "--internal-host", "127.0.0.1", "--enable-legacy-api-token"],
            env=server_env(data, credentials), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=data, timeout=timeout, check=False, umask=0o077)
    if proc.returncode != 0:
        raise StudioServerError(f"`label-studio init` failed (exit {proc.returncode}); see "
                                f"{data / LOG_FILE}")
    write_private(data / CREDENTIALS_FILE, json.dumps(asdict(credentials)))
    write_private(data / TOKEN_FILE, credentials.token + "\n")
    log.info("Label Studio initialised in %.0f s", time.perf_counter() - started)
    return credentials


def copy_data_dir(template: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy an initialised data dir (tests start from one instead of a cold init)."""
    src, dst = Path(template), Path(dest)
    if not is_initialised(src):
        raise StudioServerError(f"{src} is not an initialised Label Studio data dir")
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(STATE_FILE, LOG_FILE, "home"))
    return dst


def _read_state(data_dir: Path) -> dict | None:
    path = data_dir / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def release_of(url: str, timeout: float = 5.0) -> str | None:
    """The release a Label Studio server says it runs (its open ``/api/version``), or None
    when it does not say."""
    try:
        response = httpx.get(f"{url}/api/version", timeout=timeout)
        release = response.json().get("release") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return release if isinstance(release, str) and release else None


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        response = httpx.get(f"{url}/health", timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and '"UP"' in response.text


def running_server(data_dir: str | os.PathLike) -> StudioServer | None:
    """The server `start_server` started for ``data_dir``, if it still runs and answers."""
    data = Path(data_dir).resolve()
    state = _read_state(data)
    credentials = read_credentials(data)
    if state is None or credentials is None or not pid_alive(int(state["pid"])):
        return None
    if not healthy(state["url"]):
        return None
    return StudioServer(url=state["url"], port=int(state["port"]), pid=int(state["pid"]),
                        data_dir=str(data), credentials=credentials)


def start_server(data_dir: str | os.PathLike, *, port: int = 0,
                 venv: str | os.PathLike | None = None, timeout: float = 180) -> StudioServer:
    """Start Label Studio on 127.0.0.1 for ``data_dir`` (initialising it first if needed) and
    wait until /health answers. port: 0 = the first free port from 8080; a busy port is an
    error (Label Studio itself would silently move to another one).

    The server runs in its own session (process group): :func:`stop_server` ends the group.
    """
    data = Path(data_dir).resolve()
    private_dir(data)
    existing = read_credentials(data)
    if existing is not None and not (data / TOKEN_FILE).exists():  # initialised before it
        write_private(data / TOKEN_FILE, existing.token + "\n")
    current = running_server(data)
    if current is not None:
        log.info("Label Studio already runs for %s at %s", data, current.url)
        return current
    if port and not port_is_free(port):
        raise StudioServerError(f"port {port} on 127.0.0.1 is busy; pick another (--port) or "
                                f"0 for any free one")
    credentials = init_data_dir(data, venv=venv)
    exe = studio_executable(venv)
    port = port or free_port(DEFAULT_PORT)
    url = f"http://127.0.0.1:{port}"
    log_path = data / LOG_FILE
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [str(exe), "start", "--no-browser", "--data-dir", str(data), "--internal-host",
             "127.0.0.1", "--port", str(port)],
            env=server_env(data, credentials), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=data, start_new_session=True, umask=0o077)
    (data / STATE_FILE).write_text(json.dumps({"pid": proc.pid, "port": port, "url": url}),
                                   encoding="utf-8")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            (data / STATE_FILE).unlink(missing_ok=True)
            raise StudioServerError(f"Label Studio exited with code {proc.returncode} while "
                                    f"starting; see {log_path}")
        if healthy(url, timeout=1.0):
            log.info("Label Studio %s is up at %s (pid %d)", release_of(url) or "(its version "
                     "unknown)", url, proc.pid)
            return StudioServer(url=url, port=port, pid=proc.pid, data_dir=str(data),
                                credentials=credentials)
        time.sleep(0.5)
    _kill_group(proc.pid)
    (data / STATE_FILE).unlink(missing_ok=True)
    raise StudioServerError(f"Label Studio did not answer on {url}/health within {timeout:.0f} "
                            f"s; see {log_path}")


def _kill_group(pid: int, timeout: float = 20) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child: poll for the pid to vanish
            finished = 0 if pid_alive(pid) else pid
        if finished:
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def stop_server(data_dir: str | os.PathLike) -> bool:
    """Stop the server started for ``data_dir``; False if none was running."""
    data = Path(data_dir).resolve()
    state = _read_state(data)
    if state is None:
        return False
    pid = int(state["pid"])
    stopped = pid_alive(pid)
    if stopped:
        _kill_group(pid)
        log.info("stopped Label Studio (pid %d) at %s", pid, state.get("url"))
    (data / STATE_FILE).unlink(missing_ok=True)
    return stopped


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - a debugging aid
    """``python -m relabeler.plugin.server up|down DATA_DIR [PORT]``."""
    args = argv if argv is not None else sys.argv[1:]
    logging.basicConfig(level=logging.INFO)
    if len(args) >= 2 and args[0] == "up":
        server = start_server(args[1], port=int(args[2]) if len(args) > 2 else 0)
        print(server.url)
        return 0
    if len(args) == 2 and args[0] == "down":
        return 0 if stop_server(args[1]) else 1
    print(main.__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
