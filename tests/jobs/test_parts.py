"""PartAssembler: parts written once complete, rows that arrive twice kept once."""

import numpy as np
import pytest

from relabeler.jobs._parts import PartAssembler
from relabeler.jobs._ray import PoolPlan


def _take(batch, rows):
    return {k: v[rows] for k, v in batch.items()}


def test_parts_are_written_whole_and_retried_rows_count_once(caplog):
    written = {}

    def write(key, pieces):
        rows = np.concatenate([p["_pos"] for p in pieces])
        written[key] = sorted(rows.tolist())
        return len(rows)

    # two parts of 3 rows (positions 0-2 and 3-5), the second only 2 rows long here
    assembler = PartAssembler("extract", {(0, 0): 3, (0, 1): 2}, 3, write)
    batch = {"_pos": np.array([0, 3, 1])}
    assert assembler.add(np.array([[0, 0], [0, 1], [0, 0]]), batch["_pos"], batch, _take) == 3
    assert written == {}
    # a retried batch brings rows 0 and 3 again, with the missing rows 2 and 4
    batch = {"_pos": np.array([0, 2, 3, 4, 4])}
    assert assembler.add(np.array([[0, 0], [0, 0], [0, 1], [0, 1], [0, 1]]), batch["_pos"],
                         batch, _take) == 2
    assert written == {(0, 0): [0, 1, 2], (0, 1): [3, 4]}
    assert "3 rows arrived twice" in caplog.text
    # a finished part takes nothing more
    batch = {"_pos": np.array([1])}
    assert assembler.add(np.array([[0, 0]]), batch["_pos"], batch, _take) == 0
    assert assembler.done == {(0, 0), (0, 1)}


def test_one_column_keys_and_the_failure_message():
    assembler = PartAssembler("attribute", {(0,): 2, (1,): 2}, 2, lambda key, pieces: 2)
    batch = {"_pos": np.array([0, 1])}
    assert assembler.add(np.array([0, 0]), batch["_pos"], batch, _take) == 2
    plan = PoolPlan(num_actors=1, num_cpus=1.0, num_gpus=0.0, torch_threads=1, max_restarts=0)
    message = assembler.failure_message(RuntimeError("boom\nmore\nfailed because of X"), plan)
    assert message.startswith("attribute could not finish: the Ray Data pass stopped "
                              "(RuntimeError: boom failed because of X). 1 of 2 parts")
    assert message.endswith("run the same command again to resume from them")
    with pytest.raises(KeyError):
        assembler.add(np.array([5]), np.array([10]), {"_pos": np.array([10])}, _take)


def _actor_died(cause: BaseException | None):
    """Ray's ActorDiedError: ``cause`` raised in the actor's constructor, or None for an actor
    whose process or node died."""
    from ray import exceptions as rex

    if cause is None:
        return rex.ActorDiedError()
    task = rex.RayTaskError(
        "__init__", "Traceback (most recent call last):\n  File \"extract.py\", line 74\n"
        "relabeler.errors.ModelError: model folder /private/run/model does not exist", cause,
        proctitle="\x1b[36mray::MapWorker(MapBatches(FeatureExtractor)).__init__()\x1b[39m",
        pid=1, ip="192.0.2.2", actor_repr="MapWorker", actor_id=None)
    task._actor_id = None
    return rex.ActorDiedError(task)


def test_an_actor_whose_constructor_raised_is_not_a_lost_worker():
    from relabeler.errors import ModelError
    from relabeler.jobs._ray import actor_start_error, lost_worker

    failed = _actor_died(ModelError("model folder /private/run/model does not exist"))
    assert not lost_worker(failed)
    assert actor_start_error(failed) == ("relabeler.errors.ModelError: model folder "
                                         "/private/run/model does not exist")
    died = _actor_died(None)  # a node that died: a rerun may well get through
    assert lost_worker(died) and actor_start_error(died) is None
    assembler = PartAssembler("extract", {(0,): 2, (1,): 2}, 2, lambda key, pieces: 2)
    plan = PoolPlan(num_actors=1, num_cpus=1.0, num_gpus=0.0, torch_threads=1, max_restarts=3)
    wrapped = RuntimeError("the Ray Data pass failed")
    wrapped.__cause__ = failed
    message = assembler.failure_message(wrapped, plan)
    assert message.startswith(
        "extract could not start its Ray actors: their constructor raised "
        "relabeler.errors.ModelError: model folder /private/run/model does not exist (on the "
        "worker nodes:")
    assert "lost" not in message and "\x1b" not in message
    assert message.endswith("0 of 2 parts were written this run and are kept")
    lost = assembler.failure_message(died, plan)
    assert lost.startswith("extract could not finish: Ray workers were lost more often than "
                           "[ray] max_restarts=3")


def test_an_address_relabeler_cannot_join_is_a_config_error_naming_its_setting():
    import socket

    from relabeler.errors import ConfigError
    from relabeler.jobs._ray import check_address

    with pytest.raises(ConfigError, match=r"ray\.address = 'ray://head:10001': a Ray Client "
                                          r"address cannot run relabeler's Ray Data stages"):
        check_address("ray://head:10001")
    with pytest.raises(ConfigError, match=r"RAY_ADDRESS = 'http://127\.0\.0\.1:8265' is a URL "
                                          r"\(a dashboard's is for `ray job submit`\)"):
        check_address("http://127.0.0.1:8265", "RAY_ADDRESS")
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(ConfigError, match=rf"ray\.address = '127\.0\.0\.1:{port}': nothing "
                                          r"answers at .* within 10 s .*is the Ray head running"):
        check_address(f"127.0.0.1:{port}")
    check_address("auto")


def test_an_address_where_something_else_than_ray_answers_is_refused_fast(monkeypatch):
    # the dashboard's port pasted as RAY_ADDRESS (README's `ray job submit` uses :8265) passed
    # the TCP check, and Ray then retried it for more than ten minutes
    import http.server
    import threading

    import grpc

    import relabeler.jobs._ray as ray_helpers
    from relabeler.errors import ConfigError

    monkeypatch.setattr(ray_helpers, "CONNECT_TIMEOUT", 1.0)
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    server = grpc.server(__import__("concurrent.futures").futures.ThreadPoolExecutor(1))
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        web_address = f"127.0.0.1:{web.server_address[1]}"
        assert ray_helpers._speaks_grpc(f"127.0.0.1:{grpc_port}", 5.0)
        assert not ray_helpers._speaks_grpc(web_address, 1.0)
        monkeypatch.setattr(ray_helpers, "_dialled", lambda address: address)
        with pytest.raises(ConfigError, match=rf"^RAY_ADDRESS = '{web_address}': something "
                                              r"answers at .*, but not a Ray cluster's GCS .*"
                                              r"a dashboard's port \(8265\)"):
            ray_helpers.check_address(web_address, "RAY_ADDRESS")
        ray_helpers.check_address(f"127.0.0.1:{grpc_port}")  # a gRPC server: Ray's to judge
        monkeypatch.setenv("RAY_USE_TLS", "1")  # a TLS GCS opens no plain channel: not probed
        ray_helpers.check_address(web_address)
    finally:
        web.shutdown()
        server.stop(0)


def test_the_address_is_checked_where_ray_dials_it(monkeypatch):
    # ray.init puts the node's IP in place of a loopback host; the check probes the same
    import relabeler.jobs._ray as ray_helpers

    dialled = ray_helpers._dialled("127.0.0.1:6379")
    assert dialled.endswith(":6379")
    from ray._private.services import get_node_ip_address

    assert dialled == f"{get_node_ip_address()}:6379"
    assert ray_helpers._dialled("10.0.0.5:6379") == "10.0.0.5:6379"


def test_a_port_that_answers_on_loopback_only_is_named_so(monkeypatch):
    # `ray start` binds the dashboard to 127.0.0.1; Ray dials the node's IP in its place, and
    # the check said "is the Ray head running?" while it ran
    import socket

    import relabeler.jobs._ray as ray_helpers
    from relabeler.errors import ConfigError

    real = socket.create_connection

    def create_connection(where, timeout):
        if where[0] == "192.0.2.2":  # the node's IP, where nothing listens
            raise ConnectionRefusedError(111, "Connection refused")
        return real(where, timeout=timeout)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(ray_helpers, "_dialled",
                        lambda address: "192.0.2.2:" + address.rpartition(":")[2])
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            ray_helpers.check_address(f"127.0.0.1:{port}")
    assert str(caught.value) == (
        f"ray.address = '127.0.0.1:{port}': the port answers on loopback only, not at "
        f"192.0.2.2:{port}, where Ray dials it (Connection refused): probably a Ray dashboard "
        f"(8265 by default; `ray start` binds it to 127.0.0.1); ray.address wants the "
        f"cluster's GCS port (6379 by default)")
    # nothing on loopback either: the head is not running
    with pytest.raises(ConfigError, match=rf"nothing answers at 192\.0\.2\.2:{port} \(where "
                                          rf"Ray dials 127\.0\.0\.1:{port}\) .*Connection "
                                          r"refused.*is the Ray head running"):
        ray_helpers.check_address(f"127.0.0.1:{port}")


def test_connect_checks_the_address_before_ray_and_names_ray_s_refusal(monkeypatch):
    import socket

    import ray

    from relabeler.errors import ConfigError
    from relabeler.jobs._ray import connect

    def never(**kwargs):
        raise AssertionError("ray.init was asked")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", never)
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    # Ray retried a dead address for minutes; a wrong kind of address never reaches it
    with pytest.raises(ConfigError, match=r"^RAY_ADDRESS = 'ray://head:10001'"):
        connect()
    with pytest.raises(ConfigError, match=r"^ray\.address = 'http://h:8265' is a URL"):
        connect("http://h:8265")

    def refuses(**kwargs):
        raise ConnectionError("Could not find any running Ray instance.\nPlease specify ...")

    monkeypatch.setattr(ray, "init", refuses)
    monkeypatch.setattr("relabeler.jobs._ray._speaks_grpc", lambda target, timeout: True)
    monkeypatch.setattr("relabeler.jobs._ray._dialled", lambda address: address)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        address = f"127.0.0.1:{listening.getsockname()[1]}"
        with pytest.raises(ConfigError, match=rf"^ray\.address = '{address}': Ray could not "
                                              r"join the cluster there \(Could not find any "
                                              r"running Ray instance\. Please specify \.\.\.\)\. "
                                              r"If the cluster uses "
                                              r"token authentication .* set RAY_AUTH_MODE=token "
                                              r"and RAY_AUTH_TOKEN"):
            connect(address)

        def unauthenticated(**kwargs):
            raise ConnectionError("Failed to connect to Ray cluster\nInvalidAuthToken: ...")

        monkeypatch.setattr(ray, "init", unauthenticated)
        monkeypatch.setenv("RAY_AUTH_MODE", "token")
        with pytest.raises(ConfigError, match=r"\(Failed to connect to Ray cluster "
                                              r"InvalidAuthToken: \.\.\.\); the "
                                              r"cluster refused this driver's authentication"):
            connect(address)


def test_a_version_mismatch_keeps_both_versions_and_says_to_match_them(monkeypatch):
    # only Ray's first line was kept ("The cluster was started with:"), with a token hint
    import platform

    import ray
    from ray._private.utils import check_version_info

    from relabeler.jobs._ray import join_failure

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with pytest.raises(RuntimeError) as caught:
        check_version_info({"ray_version": "2.59.0", "python_version": "3.10.14"},
                           "node 1.2.3.4")
    message = join_failure("head:6379", "ray.address", caught.value)
    mine = f"Ray {ray.__version__}, Python {platform.python_version()}"
    assert message == (
        "ray.address = 'head:6379': Ray could not join the cluster there (Version mismatch: "
        "The cluster was started with: Ray: 2.59.0 Python: 3.10.14 This process on node "
        f"1.2.3.4 was started with: Ray: {ray.__version__} Python: "
        f"{platform.python_version()}); the driver and the cluster need the same Ray and "
        f"Python versions: run the driver where they match the cluster's (this driver has "
        f"{mine}), or start the cluster with the driver's")
    # another error keeps its first lines, not the advice after them
    long = RuntimeError("one\n\ntwo\nthree\nfour")
    assert "(one two three). If the cluster" in join_failure("h:1", "ray.address", long)


def test_an_actor_or_training_task_on_a_node_with_another_relabeler_refuses_to_start(monkeypatch):
    # Ray loads the actors' classes from each node's own relabeler, and nothing compared it
    import ray.util

    from relabeler import __version__
    from relabeler.errors import ConfigError
    from relabeler.jobs._ray import check_driver_version
    from relabeler.jobs.attribute import AttributionWorker
    from relabeler.jobs.extract import FeatureExtractor
    from relabeler.jobs.knn_shards import ShardSearcher

    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: "192.0.2.7")
    check_driver_version(__version__)
    check_driver_version(None)  # an actor built in-process
    wanted = (f"relabeler {__version__} is installed on the Ray node 192.0.2.7, but the "
              f"driver runs relabeler 0.0.9: install the same version on the driver and on "
              f"every node of the cluster (its worker image)")
    with pytest.raises(ConfigError) as caught:
        check_driver_version("0.0.9")
    assert str(caught.value) == wanted
    # each actor checks first, before it loads a model (none is at this path)
    for build in (lambda: FeatureExtractor("/nonexistent", driver_version="0.0.9"),
                  lambda: AttributionWorker("/nonexistent", driver_version="0.0.9"),
                  lambda: ShardSearcher(np.zeros((2, 3)), 0, driver_version="0.0.9")):
        with pytest.raises(ConfigError) as caught:
            build()
        assert str(caught.value) == wanted
    assert ShardSearcher(np.zeros((2, 3)), 0, driver_version=__version__).offset == 0
    # and each training task, before it reads its arguments (none of these could train)
    from relabeler.jobs.train import _fit_main_packed, _train_fold

    for run in (lambda: _train_fold("/nonexistent", [], [], None, None, None, 0, None, None, 0,
                                    driver_version="0.0.9"),
                lambda: _fit_main_packed(None, [], driver_version="0.0.9")):
        with pytest.raises(ConfigError) as caught:
            run()
        assert str(caught.value) == wanted


def test_connect_keeps_the_commands_sigterm_handler_that_ray_init_replaces(monkeypatch):
    import signal

    import ray

    from relabeler.jobs._ray import connect

    def init(**kwargs):  # what ray.init does to SIGTERM: exit at once
        signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(SystemExit(15)))

    def ours(signum, frame):
        raise KeyboardInterrupt

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr("relabeler.jobs._ray.loopback_only", lambda: None)
    before = signal.signal(signal.SIGTERM, ours)
    try:
        connect(num_cpus=1)
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, before)


def test_an_ipv6_address_is_checked_at_its_host(monkeypatch):
    from relabeler.jobs._ray import check_address

    asked = []

    class Connection:
        def close(self):
            pass

    def create_connection(where, timeout):
        asked.append(where)
        return Connection()

    monkeypatch.setattr("socket.create_connection", create_connection)
    monkeypatch.setattr("relabeler.jobs._ray._speaks_grpc", lambda target, timeout: True)
    monkeypatch.setattr("relabeler.jobs._ray._dialled", lambda address: address)
    check_address("[::1]:6379")
    check_address("10.0.0.5:6379")
    assert asked == [("::1", 6379), ("10.0.0.5", 6379)]


def test_an_address_from_ray_address_is_named_as_such_by_train_and_score(monkeypatch):
    # train and score read RAY_ADDRESS themselves and passed it on as the setting: the error
    # blamed ray.address, a key the user never set
    import socket

    import ray

    from relabeler.config import RayConfig, RunConfig, ScoreConfig
    from relabeler.errors import ConfigError
    from relabeler.jobs.score import train_neighbors
    from relabeler.jobs.train import main_fit

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{closed.getsockname()[1]}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr("relabeler.jobs._ray._dialled", lambda a: a)
    wanted = rf"^RAY_ADDRESS = '{address}': nothing answers"
    with pytest.raises(ConfigError, match=wanted):
        train_neighbors(np.zeros((4, 2), np.float32), 2, ScoreConfig(), RayConfig())
    with pytest.raises(ConfigError, match=wanted):
        main_fit(RunConfig(), ["a", "b"], ["x", "y"], np.array([0, 1]), np.array(["i", "j"]),
                 [], None, progress=False)


def test_a_local_ray_that_cannot_start_in_its_temp_dir_names_the_setting(monkeypatch):
    import ray

    from relabeler.errors import ConfigError
    from relabeler.jobs._ray import connect

    def too_long(**kwargs):
        raise OSError("AF_UNIX path length cannot exceed 107 bytes: '/tmp/xxx/sockets/raylet'")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", too_long)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr("relabeler.jobs._ray.loopback_only", lambda: None)
    with pytest.raises(ConfigError, match=r"^ray.temp_dir = '/tmp/x+': Ray could not start a "
                                          r"local cluster there \(AF_UNIX path length"):
        connect(temp_dir="/tmp/" + "x" * 100)
    with pytest.raises(OSError, match="AF_UNIX"):  # no setting of the user's to name
        connect()
