"""The only module that knows Ray's API details: connecting, pool sizing, GPUs.

Ray's arguments for actor pools have moved twice (``compute="actors"``, then ``concurrency=``,
now ``compute=ActorPoolStrategy(size=...)``); the rest of relabeler asks this module for a
:class:`PoolPlan` and passes its ``map_batches_kwargs()`` along.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: Environment variables every worker needs (offline model loading, quiet tokenizers).
WORKER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def connect(address: str = "", *, num_cpus: int = 0, temp_dir: str = "") -> None:
    """Join ``address`` (or ``RAY_ADDRESS``) when given, else start a local Ray once.

    Inside ``ray job submit`` the job driver finds its cluster through ``RAY_ADDRESS``, so the
    same command runs locally and on a cluster.
    """
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS", "")
    kwargs: dict = {
        "ignore_reinit_error": True,
        "log_to_driver": False,
        "configure_logging": False,
        "runtime_env": {"env_vars": dict(WORKER_ENV)},
    }
    if address:
        log.info("joining the Ray cluster at %s", address)
        ray.init(address=address, **kwargs)
        return
    kwargs["include_dashboard"] = False
    # A Ray that relabeler starts for itself serves this machine only: keep it on loopback
    # (Ray otherwise binds the node's network address and accepts connections from outside).
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if num_cpus:
        kwargs["num_cpus"] = num_cpus
    if temp_dir:
        kwargs["_temp_dir"] = temp_dir
    log.info("starting a local Ray")
    ray.init(**kwargs)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False


def cluster_resources() -> tuple[float, float]:
    """(CPUs, GPUs) the connected cluster has in total."""
    import ray

    resources = ray.cluster_resources()
    return float(resources.get("CPU", 0.0)), float(resources.get("GPU", 0.0))


@dataclass(frozen=True)
class PoolPlan:
    """How many model actors run, and what each one asks for."""

    num_actors: int
    num_cpus: float
    num_gpus: float
    torch_threads: int

    @property
    def on_gpu(self) -> bool:
        return self.num_gpus > 0

    def map_batches_kwargs(self) -> dict:
        from ray.data import ActorPoolStrategy

        return {
            "compute": ActorPoolStrategy(size=self.num_actors),
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
        }

    def remote_kwargs(self) -> dict:
        """For ``ray.remote(...).options(**kwargs)`` tasks and actors."""
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}


def plan_pool(*, num_actors: int = 0, gpus_per_actor: float = 1.0, num_threads: int = 0,
              max_actors: int | None = None) -> PoolPlan:
    """One actor per GPU (``gpus_per_actor`` each); on a CPU-only cluster one actor that uses
    the CPUs it was given, or ``num_actors`` actors sharing them."""
    cpus, gpus = cluster_resources()
    if gpus >= gpus_per_actor > 0:
        n = num_actors or int(gpus // gpus_per_actor)
        if max_actors:
            n = min(n, max_actors)
        return PoolPlan(num_actors=n, num_cpus=1.0, num_gpus=gpus_per_actor,
                        torch_threads=num_threads or 1)
    n = num_actors or 1
    if max_actors:
        n = min(n, max_actors)
    per_actor = max(1, int(cpus // n))
    return PoolPlan(num_actors=n, num_cpus=float(per_actor), num_gpus=0.0,
                    torch_threads=num_threads or per_actor)
