"""connect where a Ray runs in the process already: the settings it was not started with are
named in a warning, not dropped without a word. No Ray starts here: ray's entry points are
stand-ins."""

from __future__ import annotations

import logging
import types

import pytest

from relabeler.jobs import _ray


@pytest.fixture
def fake_ray(monkeypatch):
    """ray.init, is_initialized, shutdown and the session name, with no Ray behind them."""
    import ray

    state = {"up": False, "session": 0, "inits": []}

    def init(**kwargs):
        state["inits"].append(kwargs)
        state["up"], state["session"] = True, state["session"] + 1

    def shutdown():
        state["up"] = False

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "is_initialized", lambda: state["up"])
    monkeypatch.setattr(ray, "shutdown", shutdown)
    monkeypatch.setattr(ray, "get_runtime_context", lambda: types.SimpleNamespace(
        get_session_name=lambda: f"session_{state['session']}"))
    monkeypatch.setattr(_ray, "_started", None)
    monkeypatch.setattr(_ray, "_warned", set())
    monkeypatch.setattr(_ray, "loopback_only", lambda: None)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return state


def _warnings(caplog) -> list[str]:
    found = [r.getMessage() for r in caplog.records
             if r.name == _ray.__name__ and r.levelno == logging.WARNING]
    caplog.clear()
    return found


def test_a_second_run_with_other_ray_settings_is_told_the_running_ray_is_used(fake_ray,
                                                                              caplog):
    # connect returned at once where Ray was up: a second Run's temp_dir, num_cpus or address
    # were dropped without a word
    import ray

    caplog.set_level(logging.WARNING, logger=_ray.__name__)
    _ray.connect("", num_cpus=2, temp_dir="/tmp/ray-a")
    assert len(fake_ray["inits"]) == 1 and fake_ray["inits"][0]["_temp_dir"] == "/tmp/ray-a"
    # the same settings, or none of a local Ray's own (0 and "" leave them to Ray): quiet
    _ray.connect("", num_cpus=2, temp_dir="/tmp/ray-a")
    _ray.connect()
    assert _warnings(caplog) == []
    _ray.connect("", num_cpus=4, temp_dir="/tmp/ray-b")
    assert _warnings(caplog) == [
        "Ray is already running in this process (ray.address unset (a local Ray), "
        "ray.num_cpus = 2, ray.temp_dir = '/tmp/ray-a') and is used as it is, not with this "
        "run's ray.num_cpus = 4, ray.temp_dir = '/tmp/ray-b': Ray starts once in a process. To "
        "use this run's settings, call ray.shutdown() before it, or run it in a new process"]
    _ray.connect("", num_cpus=4, temp_dir="/tmp/ray-b")  # said once, not at every stage
    assert _warnings(caplog) == []
    _ray.connect("ray://head:10001")
    [message] = _warnings(caplog)
    assert "not with this run's ray.address = 'ray://head:10001'" in message
    assert len(fake_ray["inits"]) == 1  # none of them started another Ray
    # after ray.shutdown() the next run's settings start the next Ray, and are its own
    ray.shutdown()
    _ray.connect("", temp_dir="/tmp/ray-b")
    assert fake_ray["inits"][-1]["_temp_dir"] == "/tmp/ray-b" and _warnings(caplog) == []
    _ray.connect("", temp_dir="/tmp/ray-b")
    assert _warnings(caplog) == []


def test_a_ray_started_outside_relabeler_is_named_so(fake_ray, caplog):
    import ray

    caplog.set_level(logging.WARNING, logger=_ray.__name__)
    ray.init()  # the caller's own
    _ray.connect()
    assert _warnings(caplog) == []
    _ray.connect("", temp_dir="/tmp/ray-c")
    [message] = _warnings(caplog)
    assert message.startswith("Ray is already running in this process (started outside "
                              "relabeler) and is used as it is, not with this run's "
                              "ray.temp_dir = '/tmp/ray-c'")
    assert len(fake_ray["inits"]) == 1
