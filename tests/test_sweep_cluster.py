"""Sweeps and sharded validation on Dask: a local cluster of 2 worker processes, a real
``dask scheduler`` with two ``dask worker`` processes, worker deaths, bad input on workers, and
the ``snncc sweep`` command (resume after kill, unreachable scheduler, one-line errors)."""

from __future__ import annotations

import collections
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
from test_cli import assert_one_line_error

from snncc.cluster import Executor
from snncc.errors import SnnccError
from snncc.sweep import SweepSpec, plan_sweep, run_sweep

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "digits_mlp.onnx"
GRID = {"T": [4, 8], "convert.percentile": [99.0, 99.9]}
CHIPS = ["loihi", "truenorth"]

# the test's evaluate functions run in worker processes, which cannot import this module
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def spec(**changes) -> SweepSpec:
    return SweepSpec(**{"model": EXAMPLE, "grid": GRID, "chips": CHIPS, **changes})


def measurements(results: dict) -> list[dict]:
    """What a point measured: everything but how long it took."""
    return [{key: value for key, value in point["metrics"].items() if key != "wall_seconds"}
            | {"params": point["params"], "chips": point["chips"]}
            for point in results["points"]]


def snncc(*args: str, timeout: float = 300, env: dict | None = None
          ) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "CI": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "snncc", *args], capture_output=True,
                          text=True, env=environment, cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def serial_results(tmp_path_factory):
    with Executor(workers=1) as executor:
        return run_sweep(plan_sweep(spec()), tmp_path_factory.mktemp("serial") / "out",
                         executor, plots=False).results


@pytest.fixture(scope="module")
def cluster():
    """A local Dask cluster of 2 worker processes (one thread each)."""
    with Executor(workers=2) as executor:
        yield executor


# ------------------------------------------------------------------------------ local cluster


def test_two_local_workers_give_the_serial_results(cluster, serial_results, tmp_path):
    assert cluster.describe() == "local:2" and cluster.threads() == 2
    run = run_sweep(plan_sweep(spec()), tmp_path / "out", cluster, plots=False)
    assert run.results["executor"] == "local:2" and run.computed == 4
    assert measurements(run.results) == measurements(serial_results)


def worker_housekeeping(dask_worker) -> dict:
    """What of Dask's dashboard housekeeping runs in a worker process."""
    import dask

    return {"profiler": "profile" in dask_worker.periodic_callbacks,
            "loop profiler": not isinstance(dask_worker.io_loop.profile, collections.deque),
            "tick": dask.config.get("distributed.admin.tick.interval")}


def test_local_workers_run_without_the_dashboard_housekeeping(cluster):
    """Dask's stack sampler and 20 ms ticks took 7-8 % of a worker's CPU from the points."""
    states = cluster.client.run(worker_housekeeping)
    assert len(states) == 2
    for state in states.values():
        assert state == {"profiler": False, "loop profiler": False, "tick": "1s"}
    scheduler = cluster.client.run_on_scheduler(
        lambda dask_scheduler: "stealing" in dask_scheduler.extensions)
    assert scheduler is False


def test_sharded_validation_on_two_workers_equals_one_run(cluster):
    from snncc.pipeline import validate

    common = {"timesteps": 8, "options": {"convert": {"coding": "rate"}},
              "ann_reference": False}
    serial, _ = validate(EXAMPLE, **common)
    sharded, _ = validate(EXAMPLE, executor=cluster, **common)
    for key in ("snn_accuracy", "accuracy_curve", "spikes_per_sample", "spikes_per_layer",
                "synops_per_sample", "samples"):
        assert getattr(sharded, key) == getattr(serial, key), key


def test_sharded_validation_runs_the_sim_target_only(cluster):
    from snncc.pipeline import validate

    with pytest.raises(SnnccError, match=r"\(the sim target\) only, not 'lava'"):
        validate(EXAMPLE, target="lava", executor=cluster)


def fake_metrics(task) -> dict:
    """Measurements in the shape evaluate_point returns, without the work."""
    return {"accuracy": 0.5 + task.index / 100, "accuracy_curve": [0.5], "mode": "float",
            "samples": 10, "timesteps": task.timesteps, "spikes_per_sample": 10.0,
            "spikes_per_layer": {}, "synops_per_sample": 100.0 * (task.index + 1),
            "decision_time": None, "neurons": 20, "fits": [], "wall_seconds": 0.0}


def dying(task, model, *, index: int, marker: str | None = None):
    """Kill the worker process on point ``index`` (every time, or once when ``marker``)."""
    if task.index == index and (marker is None or not os.path.exists(marker)):
        if marker is not None:
            Path(marker).touch()
        os._exit(3)
    return fake_metrics(task)


def test_a_worker_death_is_retried_once_then_the_point_fails(cluster, tmp_path):
    plan = plan_sweep(spec(grid={"T": [2, 3, 4, 5]}, chips=[]))
    run = run_sweep(plan, tmp_path / "always", cluster,
                    evaluate=functools.partial(dying, index=1), plots=False)
    points = run.results["points"]
    assert [point["status"] for point in points] == ["ok", "failed", "ok", "ok"]
    assert points[1]["attempts"] == 2 and "died" in points[1]["error"]
    assert run.failed == 1 and run.computed == 3

    marker = tmp_path / "died-once"
    run = run_sweep(plan, tmp_path / "once", cluster, plots=False,
                    evaluate=functools.partial(dying, index=2, marker=str(marker)))
    points = run.results["points"]
    assert marker.exists() and all(point["status"] == "ok" for point in points)
    assert points[2]["attempts"] == 2 and points[2]["metrics"]["accuracy"] == 0.52


def test_a_missing_data_directory_on_the_workers_is_one_clear_error(cluster, tmp_path):
    plan = plan_sweep(spec(model=REPO.parent / "shared" / "models" / "mnist_mlp.onnx",
                           dataset="mnist", data_dir=str(tmp_path / "nowhere"), chips=[])
                      ) if (REPO.parent / "shared" / "models").is_dir() else None
    if plan is None:
        pytest.skip("../shared/models is absent")
    with pytest.raises(SnnccError) as error:
        run_sweep(plan, tmp_path / "out", cluster)
    message = str(error.value)
    assert f"data directory {tmp_path / 'nowhere'} does not exist" in message
    assert "finished point(s) kept in" in message and "\n" not in message


def failing_on(task, model, *, index: int):
    if task.index == index:
        raise SnnccError("bad value on a worker")
    time.sleep(0.2)
    return fake_metrics(task)


def test_bad_input_on_a_worker_keeps_the_finished_points(cluster, tmp_path):
    plan = plan_sweep(spec(grid={"T": [2, 3, 4, 5, 6]}, chips=[]))
    with pytest.raises(SnnccError) as error:
        run_sweep(plan, tmp_path / "out", cluster, evaluate=functools.partial(
            failing_on, index=3))
    message = str(error.value)
    assert message.startswith("bad value on a worker (")
    kept = int(message.split("(")[1].split(" ")[0])
    assert kept >= 1 and len(list((tmp_path / "out" / "cache").glob("*.json"))) == kept


# --------------------------------------------------------------------- a real Dask scheduler


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, stopped afterwards."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    dask = [sys.executable, "-m", "dask"]
    started = [subprocess.Popen(
        dask + ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)]
    try:
        for index in range(2):
            started.append(subprocess.Popen(
                dask + ["worker", address, "--nthreads", "1", "--nworkers", "1",
                        "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{index}",
                        "--local-directory", str(tmp_path / f"w{index}")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment))
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
        for process in reversed(started):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_sweep_on_a_real_scheduler_equals_the_serial_sweep(dask_cluster, serial_results,
                                                           tmp_path):
    out = tmp_path / "out"
    result = snncc("sweep", str(EXAMPLE), "--grid", "T=4,8", "--grid",
                   "convert.percentile=99.0,99.9", "--chip", "loihi", "--chip", "truenorth",
                   "--scheduler", dask_cluster, "-o", str(out), "--no-plots")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"on {dask_cluster}" in result.stdout
    results = json.loads((out / "sweep.json").read_text())
    assert results["executor"] == dask_cluster
    assert measurements(results) == measurements(serial_results)


# ------------------------------------------------------------------------------------ the CLI


def test_unreachable_scheduler_is_one_line_within_the_timeout(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.perf_counter()
    result = snncc("sweep", str(EXAMPLE), "--grid", "T=4", "--scheduler", address,
                   "--scheduler-timeout", "2", "-o", str(tmp_path / "out"))
    assert_one_line_error(result, f"scheduler {address} unreachable within 2 s")
    assert time.perf_counter() - started < 60
    result = snncc("validate", str(EXAMPLE), "--scheduler", address, "--scheduler-timeout",
                   "2")
    assert_one_line_error(result, "unreachable within 2 s")


def test_scheduler_from_the_environment(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    result = snncc("sweep", str(EXAMPLE), "--grid", "T=4", "--scheduler-timeout", "1",
                   "-o", str(tmp_path / "out"), env={"SNNCC_SCHEDULER": address})
    assert_one_line_error(result, f"scheduler {address} unreachable")


@pytest.mark.parametrize("args, fragment", [
    (["--grid", "T=4", "--grid", "convert.percentil=99"],
     "pass 'convert' has no option 'percentil'"),
    (["--grid", "speed=1,2"], "unknown grid key 'speed'"),
    ([], "empty grid"),
    (["--grid", "T=4", "--option", "convert.speed=2"], "unknown option convert.speed"),
    (["--grid", "T=4", "--chip", "loihi3"], "unknown chip 'loihi3'"),
    (["--grid", "T=4", "--workers", "0"], "workers must be >= 1"),
    (["--grid", "T=4", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "not both"),
])
def test_sweep_bad_input_is_one_line(tmp_path, args, fragment):
    result = snncc("sweep", str(EXAMPLE), "-o", str(tmp_path / "out"), *args)
    assert_one_line_error(result, fragment)


def test_killed_sweep_resumes_from_its_cache(tmp_path):
    out = tmp_path / "out"
    args = ["sweep", str(EXAMPLE), "--grid", "T=2,3,4,5,6,7,8,9", "--chip", "loihi",
            "--workers", "1", "-o", str(out), "--no-plots"]
    environment = {**os.environ, "PYTHONPATH": str(REPO), "CI": "1"}
    process = subprocess.Popen([sys.executable, "-m", "snncc", *args], cwd=REPO,
                               env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while len(list((out / "cache").glob("*.json"))) < 2 and time.monotonic() < deadline:
            assert process.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished = len(list((out / "cache").glob("*.json")))
    assert 2 <= finished < 8 and not (out / "sweep.json").exists()
    result = snncc(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((out / "sweep.json").read_text())
    assert results["summary"]["cached"] == finished and results["summary"]["ok"] == 8
    assert f"{8 - finished} point(s) computed, {finished} from the cache" in result.stdout


def test_validate_workers_flag_gives_the_serial_report(tmp_path):
    reports = []
    for extra in ([], ["--workers", "2"]):
        path = tmp_path / f"report{len(reports)}.json"
        result = snncc("validate", str(EXAMPLE), "-T", "8", "--option", "convert.coding=rate",
                       "--json", str(path), *extra)
        assert result.returncode == 0, result.stdout + result.stderr
        reports.append(json.loads(path.read_text()))
    for key in ("snn_accuracy", "accuracy_curve", "spikes_per_sample", "spikes_per_layer",
                "synops_per_sample"):
        assert reports[0][key] == reports[1][key], key
    result = snncc("validate", str(EXAMPLE), "--target", "lava", "--workers", "2")
    assert_one_line_error(result, "(the sim target) only, not 'lava'")


def test_sweep_from_the_config_file(tmp_path):
    config = tmp_path / "snncc.toml"
    config.write_text(f"""
model = "{EXAMPLE}"
limit = 100
[sweep]
grid = {{ T = [4], "convert.percentile" = [99.0, 99.9] }}
chips = ["loihi"]
output = "results"
workers = 1
plots = false
""")
    result = snncc("sweep", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((tmp_path / "results" / "sweep.json").read_text())
    assert results["limit"] == 100 and len(results["points"]) == 2
    assert results["executor"] == "serial" and not (tmp_path / "results" / "plots").exists()
    assert "snncc sweep" in result.stdout and "loihi cores" in result.stdout


def test_local_workers_leave_this_process_environment_as_it_was(monkeypatch):
    import os

    from snncc.cluster import WORKER_ENV

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "7")
    monkeypatch.delenv("SNNCC_THREADS", raising=False)
    before = {key: os.environ.get(key) for key in WORKER_ENV}
    with Executor(workers=2):
        pass
    assert {key: os.environ.get(key) for key in WORKER_ENV} == before
    assert "NUMBA_NUM_THREADS" not in WORKER_ENV  # numba refuses a changed value after launch


def test_local_workers_leave_the_start_method_unset_for_lava():
    """Spawning workers fixes the stdlib's default start method; lava-nc sets 'fork' when first
    imported and raised "context has already been set" after a sweep in the same process."""
    import multiprocessing

    multiprocessing.set_start_method(None, force=True)
    with Executor(workers=2):
        assert multiprocessing.get_start_method(allow_none=True) is None
    assert multiprocessing.get_start_method(allow_none=True) is None
