"""The only module that knows Ray's API details: connecting, pool sizing, GPUs.

Ray's arguments for actor pools have moved twice (``compute="actors"``, then ``concurrency=``,
now ``compute=ActorPoolStrategy(size=...)``); the rest of relabeler asks this module for a
:class:`PoolPlan` and passes its ``map_batches_kwargs()`` along.
"""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from relabeler.config import RayConfig
from relabeler.errors import ConfigError

log = logging.getLogger(__name__)

#: Environment variables every worker needs (offline model loading, quiet tokenizers).
WORKER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # a worker that asked for no GPU sees none (Ray leaves CUDA_VISIBLE_DEVICES alone for
    # it otherwise, and its "auto" device would take a GPU the scheduler gave to others)
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "1",
}


@dataclass(frozen=True)
class _Started:
    """The Ray session connect started or joined, with the settings it was given."""

    session: str
    asked: dict[str, str | int]
    source: str  # the name its address was given by: ray.address or RAY_ADDRESS


#: the Ray this process's connect started or joined (None: none yet), and the settings other
#: than its that a warning has named already
_started: _Started | None = None
_warned: set[tuple] = set()


def connect(address: str = "", *, num_cpus: int = 0, temp_dir: str = "") -> None:
    """Join ``address`` (or ``RAY_ADDRESS``) when given, else start a local Ray once.

    Inside ``ray job submit`` the job driver finds its cluster through ``RAY_ADDRESS``, so the
    same command runs locally and on a cluster. Where a Ray runs in this process already it is
    used as it is, and a warning names the settings asked for here that it was not started
    with (``ray.init`` cannot change them).
    """
    global _started
    import ray

    source = "ray.address" if address else "RAY_ADDRESS"
    asked = _asked(address or os.environ.get("RAY_ADDRESS", ""), num_cpus, temp_dir)
    if ray.is_initialized():
        _warn_unused(asked, source)
        return
    address = address or os.environ.get("RAY_ADDRESS", "")
    kwargs: dict = {
        "ignore_reinit_error": True,
        "log_to_driver": False,
        "configure_logging": False,
        "runtime_env": {"env_vars": dict(WORKER_ENV)},
    }
    if address:
        check_address(address, source)
        log.info("joining the Ray cluster at %s", address)
        try:
            with _own_sigterm():
                ray.init(address=address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(join_failure(address, source, exc)) from exc
        _started = _Started(_session_name(), asked, source)
        return
    kwargs["include_dashboard"] = False
    loopback_only()
    if num_cpus:
        kwargs["num_cpus"] = num_cpus
    if temp_dir:
        kwargs["_temp_dir"] = temp_dir
    log.info("starting a local Ray")
    try:
        with _own_sigterm():
            ray.init(**kwargs)
    except OSError as exc:
        if not temp_dir:
            raise
        # Ray's sockets live in its temp dir, and a socket's path has at most 107 bytes
        raise ConfigError(f"ray.temp_dir = {temp_dir!r}: Ray could not start a local cluster "
                          f"there ({exc}); its socket paths under the folder must stay within "
                          f"107 bytes: name a short folder (e.g. /tmp/ray-run)") from exc
    _started = _Started(_session_name(), asked, source)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False


def _session_name() -> str:
    """The running Ray session's name; "" where none runs (a ``ray.init`` that a test or a
    wrapper replaced started none; asking Ray then would start one)."""
    import ray

    if not ray.is_initialized():
        return ""
    try:
        return ray.get_runtime_context().get_session_name()
    except RuntimeError:
        return ""


def _asked(address: str, num_cpus: int, temp_dir: str) -> dict[str, str | int]:
    """The settings a connect asks for; a local Ray's own only where given (0 and "" leave
    them to Ray), and none where a cluster is joined (it has its own)."""
    asked: dict[str, str | int] = {"address": address}
    if not address:
        asked.update({key: value for key, value in (("num_cpus", num_cpus),
                                                    ("temp_dir", temp_dir)) if value})
    return asked


def _shown(settings: dict[str, str | int], source: str) -> str:
    names = {"address": source, "num_cpus": "ray.num_cpus", "temp_dir": "ray.temp_dir"}
    return ", ".join(f"{names[key]} = {value!r}" if key != "address" or value
                     else "ray.address unset (a local Ray)" for key, value in settings.items())


def _warn_unused(asked: dict[str, str | int], source: str) -> None:
    """A WARNING, once for each set of settings, where ``asked`` differs from the settings of
    the Ray running in this process: ``ray.init`` starts Ray once a process, and the running
    one is used (it ignored other settings without a word)."""

    running = _started
    if running is not None and running.session != _session_name():
        running = None  # shut down since, and started again outside relabeler
    if running is None:  # started outside relabeler: nothing is known of it but that it runs
        # (ray.init() itself joins RAY_ADDRESS: only a setting of the run's own can differ)
        differ = {key: value for key, value in asked.items()
                  if value and not (key == "address" and source == "RAY_ADDRESS")}
    else:
        differ = {key: value for key, value in asked.items() if running.asked.get(key) != value}
    if not differ or tuple(sorted(differ.items())) in _warned:
        return
    _warned.add(tuple(sorted(differ.items())))
    shown = ("started outside relabeler" if running is None
             else _shown(running.asked, running.source))
    log.warning("Ray is already running in this process (%s) and is used as it is, not with "
                "this run's %s: Ray starts once in a process. To use this run's settings, call "
                "ray.shutdown() before it, or run it in a new process", shown,
                _shown(differ, source))


@contextmanager
def _own_sigterm() -> Iterator[None]:
    """Keep the SIGTERM handler the process had: ``ray.init`` puts in its own, which exits at
    once (``sys.exit``), and the command's handler (cleanup, the line saying to run it again:
    :func:`relabeler.cli.main`) would never run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


#: seconds to wait for a cluster's GCS port to answer before calling the address wrong (Ray
#: itself retries for minutes, saying little)
CONNECT_TIMEOUT = 10.0


#: lines of Ray's error that a failed join keeps (the rest is advice and URLs)
JOIN_ERROR_LINES = 3


def join_failure(address: str, source: str, exc: BaseException) -> str:
    """What to tell a user whose ``ray.init(address=...)`` failed: the first lines of Ray's
    error (all of it for a version mismatch, which names both sides' versions) and the way
    out: the driver's versions to match, or, where the cluster may want a token Ray was not
    given, how to give it (a cluster with token authentication, as every RayJob relabeler
    ships, answers a driver without the token only with warnings about an invalid token, then
    this failure)."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if text.startswith("Version mismatch"):
        import platform

        import ray

        return (f"{source} = {address!r}: Ray could not join the cluster there "
                f"({' '.join(lines)}); the driver and the cluster need the same Ray and Python "
                f"versions: run the driver where they match the cluster's (this driver has Ray "
                f"{ray.__version__}, Python {platform.python_version()}), or start the cluster "
                f"with the driver's")
    first = " ".join(lines[:JOIN_ERROR_LINES]) or type(exc).__name__
    message = f"{source} = {address!r}: Ray could not join the cluster there ({first})"
    if "auth" in text.lower():
        return (f"{message}; the cluster refused this driver's authentication: give its "
                f"token with RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH)")
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return (f"{message}. If the cluster uses token authentication (relabeler's RayJobs "
                f"do), set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to "
                f"its token; else check `ray status --address {address}`")
    return f"{message}; check `ray status --address {address}` and the token in RAY_AUTH_TOKEN"


def _dialled(address: str) -> str:
    """The address Ray itself dials for ``address``: ``ray.init`` puts the node's own IP in
    place of a loopback host (``localhost``, ``127.0.0.1``, ``::1``)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address(address) or address
    except Exception:  # noqa: BLE001 - a Ray without it, or an address it cannot parse
        return address


def _speaks_grpc(target: str, timeout: float) -> bool:
    """Whether an HTTP/2 (gRPC) connection to ``target`` opens within ``timeout`` seconds:
    Ray's GCS does; the dashboard, a web server or an S3 endpoint on the port do not, and Ray
    would retry them for many minutes, saying only that it failed to connect."""
    import grpc

    channel = grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


def _answers(host: str, port: int) -> bool:
    """Whether a TCP connection to ``host:port`` opens within :data:`CONNECT_TIMEOUT`."""
    import socket

    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
        return True
    except OSError:
        return False


def check_address(address: str, source: str = "ray.address") -> None:
    """ConfigError, naming ``source`` (the setting the address came from), for an address
    relabeler cannot join: a Ray Client address (``ray://``: Ray Data's passes of extract and
    attribute do not run through it), another URL (a dashboard's, which ``ray job submit``
    takes), or a ``host:port`` where nothing answers. ``auto`` (a node of the cluster) passes
    as it is."""
    how = ("give the cluster's GCS address, host:port (6379 by default), or 'auto' on one of "
           "its nodes; or submit the command as a Ray job (`ray job submit --address "
           "http://HEAD:8265 -- relabeler ...`), which finds the cluster itself")
    if address.startswith("ray://"):
        raise ConfigError(f"{source} = {address!r}: a Ray Client address cannot run "
                          f"relabeler's Ray Data stages (extract, attribute); {how}")
    if "://" in address:
        raise ConfigError(f"{source} = {address!r} is a URL (a dashboard's is for `ray job "
                          f"submit`); {how}")
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # an IPv6 address: [::1]:6379
    if address == "auto" or not host or not port.isdigit():
        return
    import socket

    dialled = _dialled(address)
    d_host, _, d_port = dialled.rpartition(":")
    d_host = d_host.removeprefix("[").removesuffix("]")
    where = address if dialled == address else f"{dialled} (where Ray dials {address})"
    try:
        socket.create_connection((d_host, int(d_port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        if dialled != address and _answers(host, int(port)):
            raise ConfigError(f"{source} = {address!r}: the port answers on loopback only, "
                              f"not at {dialled}, where Ray dials it ({exc.strerror or exc}): "
                              f"probably a Ray dashboard (8265 by default; `ray start` binds "
                              f"it to 127.0.0.1); {source} wants the cluster's GCS port (6379 "
                              f"by default)") from exc
        raise ConfigError(f"{source} = {address!r}: nothing answers at {where} within "
                          f"{CONNECT_TIMEOUT:g} s ({exc.strerror or exc}); is the Ray head "
                          f"running? (`ray status --address {address}`)") from exc
    # a TLS cluster's GCS does not open a plain channel: its check is Ray's own
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("0", "", "false") and not _speaks_grpc(
            dialled, CONNECT_TIMEOUT):
        raise ConfigError(f"{source} = {address!r}: something answers at {where}, but not a "
                          f"Ray cluster's GCS (no gRPC connection opened within "
                          f"{CONNECT_TIMEOUT:g} s): a dashboard's port (8265) or another "
                          f"server's; {how}")


def loopback_only() -> None:
    """A Ray that relabeler starts for itself serves this machine only: keep it on loopback
    (Ray otherwise binds the node's network address and accepts connections from outside).
    Ray reads the switch when it is imported, and it is imported by now: set its constant too
    (read on every address lookup), and the variable for the processes it starts."""
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


def check_driver_version(driver_version: str | None) -> None:
    """ConfigError, for an actor's constructor to raise first, when the relabeler on this node
    is not the driver's ``driver_version`` (None: not checked, an actor built in-process): Ray
    loads the actor's class from the node's own installation, and another version of it would
    read or write the run's files differently."""
    from relabeler._version import __version__

    if driver_version is None or driver_version == __version__:
        return
    try:
        import ray.util

        node = ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - the message matters more than the node's address
        import socket

        node = socket.gethostname()
    raise ConfigError(f"relabeler {__version__} is installed on the Ray node {node}, but the "
                      f"driver runs relabeler {driver_version}: install the same version on "
                      f"the driver and on every node of the cluster (its worker image)")


def cluster_resources() -> tuple[float, float]:
    """(CPUs, GPUs) the connected cluster has in total."""
    import ray

    resources = ray.cluster_resources()
    return float(resources.get("CPU", 0.0)), float(resources.get("GPU", 0.0))


def free_resources() -> tuple[float, float]:
    """(CPUs, GPUs) of the connected cluster that no task or actor holds now."""
    import ray

    resources = ray.available_resources()
    return float(resources.get("CPU", 0.0)), float(resources.get("GPU", 0.0))


def node_resources() -> list[dict[str, float]]:
    """CPU, GPU and memory (bytes) of each alive node of the connected cluster (an actor
    cannot span two nodes)."""
    import ray

    return [{key: float(node["Resources"].get(key, 0.0)) for key in ("CPU", "GPU", "memory")}
            for node in ray.nodes() if node["Alive"]]


def _check_fits(nodes: list[dict[str, float]], gpus: float, gpus_per_actor: float,
                cpus_per_actor: float, memory_per_actor: int) -> None:
    """ConfigError for an actor no node can hold: Ray would wait for it forever (or, for
    GPUs, relabeler would quietly run on CPUs)."""
    most = {key: max((node.get(key, 0.0) for node in nodes), default=0.0)
            for key in ("CPU", "GPU", "memory")}
    if gpus and gpus_per_actor > most["GPU"]:
        raise ConfigError(f"ray.gpus_per_actor = {gpus_per_actor:g}: no node of the cluster "
                          f"has that many GPUs (the most on one node: {most['GPU']:g}, "
                          f"{gpus:g} in all); lower it, or set 0 to run on CPUs")
    if cpus_per_actor > most["CPU"]:
        raise ConfigError(f"ray.cpus_per_actor = {cpus_per_actor:g}: no node of the cluster "
                          f"has that many CPUs (the most on one node: {most['CPU']:g})")
    if memory_per_actor > most["memory"]:
        raise ConfigError(f"ray.memory_per_actor_gib = {memory_per_actor / 2**30:g}: no node "
                          f"of the cluster has that much memory for actors (the most on one "
                          f"node: {most['memory'] / 2**30:.1f} GiB)")


def check_all_placeable(plan: PoolPlan, what: str) -> None:
    """ConfigError when the cluster cannot run all of ``plan``'s actors at once, for a job
    that waits on every one of them (the kNN shards): Ray would hold the rest back forever."""
    def fits(have: float, each: float) -> float:
        return math.floor(have / each + 1e-9) if each > 0 else math.inf

    nodes = node_resources()
    room = sum(min(fits(node["CPU"], plan.num_cpus), fits(node["GPU"], plan.num_gpus),
                   fits(node["memory"], plan.memory)) for node in nodes)
    if room < plan.num_actors:
        raise ConfigError(
            f"{what} = {plan.num_actors}: the cluster can run {room:g} such actors at once "
            f"({plan.num_gpus:g} GPU, {plan.num_cpus:g} CPU each, on {len(nodes)} node(s)), "
            f"and the search waits on every one; lower it, or set 0 for one per GPU")


#: Fault tolerance when ``[ray]`` does not set it. A lost actor (its worker or node died) is
#: restarted this often, and each batch it held is retried on the restarted actor; a stage
#: fails with a clear message only when the restarts are used up. Batches are retried without
#: a count of their own (-1): while a dead node is not yet declared dead, every call to its
#: actor fails at once, and a small count would be spent before Ray restarts the actor.
DEFAULT_MAX_RESTARTS = 3
DEFAULT_MAX_TASK_RETRIES = -1


@dataclass(frozen=True)
class PoolPlan:
    """How many model actors run, what each one asks for, and how often a lost one comes back.

    ``memory`` is in bytes (Ray's ``memory`` resource, a reservation for scheduling; 0 = none).
    ``max_restarts`` and ``max_task_retries`` follow Ray's actor options (-1 = forever).
    """

    num_actors: int
    num_cpus: float
    num_gpus: float
    torch_threads: int
    memory: int = 0
    max_restarts: int = DEFAULT_MAX_RESTARTS
    max_task_retries: int = DEFAULT_MAX_TASK_RETRIES

    @property
    def on_gpu(self) -> bool:
        return self.num_gpus > 0

    def _requests(self) -> dict:
        requests = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory:
            requests["memory"] = self.memory
        return requests

    def map_batches_kwargs(self) -> dict:
        """For ``Dataset.map_batches`` with a callable class: a fixed pool of actors and what
        each requests. Ray Data makes them restartable on its own (forever);
        :meth:`map_batches` sets this plan's limits instead."""
        from ray.data import ActorPoolStrategy

        return {"compute": ActorPoolStrategy(size=self.num_actors), **self._requests()}

    def map_batches(self, ds, fn, **kwargs):
        """``ds.map_batches(fn, **kwargs)`` on this plan's actor pool, with its restart limits.

        Ray Data 2.60 takes actor options it has no named parameter for (``max_restarts``,
        ``max_task_retries``) only through ``**ray_remote_args``, deprecated for removal in
        2.64; this is the one place that passes them (the image pins Ray 2.60).
        """
        import warnings

        from ray.util.annotations import RayDeprecationWarning

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated",
                                    category=RayDeprecationWarning)
            return ds.map_batches(fn, **kwargs, **self.map_batches_kwargs(),
                                  max_restarts=self.max_restarts,
                                  max_task_retries=self.max_task_retries)

    def remote_kwargs(self) -> dict:
        """Resource requests for ``ray.remote(...).options(**kwargs)`` tasks and actors."""
        return self._requests()

    def actor_kwargs(self) -> dict:
        """``ray.remote(cls).options(**kwargs)`` for a restartable actor."""
        return {**self._requests(), "max_restarts": self.max_restarts,
                "max_task_retries": self.max_task_retries}

    def task_kwargs(self) -> dict:
        """``ray.remote(fn).options(**kwargs)`` for a task rerun when its worker dies, as
        often as an actor would be restarted."""
        return {**self._requests(), "max_retries": self.max_restarts}


def _cpus_per_actor(n: int, total: float, nodes: list[float]) -> int:
    """The most whole CPUs each of ``n`` actors can have with all ``n`` placed at once."""
    per_actor = max(1, int(total // n))
    while per_actor > 1 and sum(int(c // per_actor) for c in nodes) < n:
        per_actor -= 1
    return per_actor


def plan_pool(*, num_actors: int = 0, gpus_per_actor: float = 1.0, num_threads: int = 0,
              max_actors: int | None = None, cpus_per_actor: float = 0.0,
              memory_per_actor: int = 0, max_restarts: int = DEFAULT_MAX_RESTARTS,
              max_task_retries: int = DEFAULT_MAX_TASK_RETRIES) -> PoolPlan:
    """One actor per GPU (``gpus_per_actor`` each); on a CPU-only cluster one actor that uses
    the CPUs it was given, or ``num_actors`` actors sharing them.

    On CPU an actor gets at most what one node has (an actor never spans nodes), fewer when
    that is what lets all ``num_actors`` run at once. ``cpus_per_actor`` (> 0) fixes the CPUs
    of each actor instead; on GPU it defaults to 1. ``memory_per_actor`` is in bytes.
    """
    cpus, gpus = cluster_resources()
    nodes = node_resources() or [{"CPU": cpus, "GPU": gpus, "memory": float("inf")}]
    _check_fits(nodes, gpus, gpus_per_actor, cpus_per_actor, memory_per_actor)
    fault = {"memory": int(memory_per_actor), "max_restarts": max_restarts,
             "max_task_retries": max_task_retries}
    if gpus >= gpus_per_actor > 0:
        n = num_actors or int(gpus // gpus_per_actor)
        if max_actors:
            n = min(n, max_actors)
        return say_if_busy(PoolPlan(num_actors=n, num_cpus=float(cpus_per_actor or 1.0),
                                    num_gpus=gpus_per_actor, torch_threads=num_threads or 1,
                                    **fault))
    n = num_actors or 1
    if max_actors:
        n = min(n, max_actors)
    if cpus_per_actor:
        per_actor = float(cpus_per_actor)
    else:
        per_actor = float(_cpus_per_actor(n, cpus, [node["CPU"] for node in nodes]))
    return say_if_busy(PoolPlan(num_actors=n, num_cpus=per_actor, num_gpus=0.0,
                                torch_threads=num_threads or max(1, int(per_actor)), **fault))


#: how long the cluster may lack room for one actor before :func:`say_if_busy` says so (work
#: of the stage before, in the same process, is still handing its CPUs back at first)
BUSY_GRACE_S = 2.0


def say_if_busy(plan: PoolPlan, *, grace_s: float | None = None) -> PoolPlan:
    """Log a warning when the cluster has not the free CPUs (or GPUs) for even one of
    ``plan``'s actors now: the plan is sized from the cluster's total, and Ray holds the work
    back, silently, until other jobs free them (on Kubernetes, until the job's deadline).
    Returns ``plan``."""
    import time

    deadline = time.monotonic() + (BUSY_GRACE_S if grace_s is None else grace_s)
    while True:
        cpu, gpu = free_resources()
        if cpu + 1e-9 >= plan.num_cpus and gpu + 1e-9 >= plan.num_gpus:
            return plan
        if time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    total_cpu, total_gpu = cluster_resources()
    need = f"{plan.num_cpus:g} CPU" + (f" and {plan.num_gpus:g} GPU" if plan.on_gpu else "")
    have = f"{cpu:g} of its {total_cpu:g} CPUs" + (
        f" and {gpu:g} of its {total_gpu:g} GPUs" if plan.on_gpu else "")
    log.warning("the Ray cluster has %s free now (other work holds the rest): the %d "
                "actor(s) of %s each wait until Ray can place them, and nothing is printed "
                "meanwhile; `ray status` shows what holds them", have, plan.num_actors, need)
    return plan


def plan_from_config(ray_config: RayConfig, *, num_actors: int = 0, num_threads: int = 0,
                     max_actors: int | None = None) -> PoolPlan:
    """:func:`plan_pool` with the requests and fault tolerance of a ``[ray]`` config section
    (``gpus_per_actor``, ``cpus_per_actor``, ``memory_per_actor_gib``, ``max_restarts``,
    ``max_task_retries``)."""
    return plan_pool(num_actors=num_actors, num_threads=num_threads, max_actors=max_actors,
                     gpus_per_actor=ray_config.gpus_per_actor,
                     cpus_per_actor=ray_config.cpus_per_actor,
                     memory_per_actor=int(ray_config.memory_per_actor_gib * 2**30),
                     max_restarts=ray_config.max_restarts,
                     max_task_retries=ray_config.max_task_retries)


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    """``error`` and the errors it wraps (a RayTaskError carries the remote one as ``cause``)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = getattr(error, "cause", None) or error.__cause__ or error.__context__


def lost_worker(error: BaseException) -> bool:
    """True when ``error`` (or an error it wraps) says a Ray worker, actor, node or object
    was lost, rather than that the stage's own code failed. An actor whose constructor raised
    was not lost: :func:`actor_start_error`."""
    from ray import exceptions as rex

    lost = (rex.RayActorError, rex.ActorUnavailableError, rex.NodeDiedError,
            rex.ObjectLostError, rex.OwnerDiedError, rex.WorkerCrashedError,
            rex.OutOfMemoryError)
    return actor_start_error(error) is None and any(isinstance(e, lost) for e in _chain(error))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def actor_start_error(error: BaseException) -> str | None:
    """Where ``error`` (or one it wraps) says an actor's constructor raised (a model folder,
    credentials or a package the nodes lack): that exception as Ray's traceback ends with it,
    ``module.Type: message``, without the traceback or colour codes; else None. A rerun does
    the same again: the cause has to be fixed first."""
    from ray import exceptions as rex

    for e in _chain(error):
        if isinstance(e, rex.RayActorError) and e.actor_init_failed:
            lines = [line.strip() for line in _ANSI.sub("", str(e)).splitlines()
                     if line.strip()]
            return lines[-1] if lines else type(e).__name__
    return None
