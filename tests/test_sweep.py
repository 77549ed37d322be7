"""Design-space sweeps (snncc.sweep): grid rules, a serial sweep on digits, cache and results."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema
import pytest

from snncc.cluster import Executor
from snncc.commands.arguments import parse_grid
from snncc.config import parse_config
from snncc.errors import SnnccError
from snncc.sweep import SweepSpec, pareto_front, plan_sweep, run_sweep
from snncc.sweep_report import results_schema

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "digits_mlp.onnx"
GRID = {"T": [4, 8], "convert.percentile": [99.0, 99.9]}
CHIPS = ["loihi", "truenorth", "loihi2"]


def spec(**changes) -> SweepSpec:
    values = {"model": EXAMPLE, "grid": GRID, "chips": CHIPS}
    return SweepSpec(**{**values, **changes})


# ------------------------------------------------------------------------------------ the grid


def test_parse_grid_reads_json_values_and_keeps_order():
    grid = parse_grid(["T=8,16", "convert.percentile=99.9,99.99", "convert.coding=rate,direct",
                       "prune.structured=true"])
    assert grid == {"T": [8, 16], "convert.percentile": [99.9, 99.99],
                    "convert.coding": ["rate", "direct"], "prune.structured": [True]}
    assert list(grid) == ["T", "convert.percentile", "convert.coding", "prune.structured"]


@pytest.mark.parametrize("items, fragment", [
    (["T"], "expected KEY=V1,V2"),
    (["=1,2"], "expected KEY=V1,V2"),
    (["T="], "has no values"),
    (["T=8", "timesteps=16"], "given twice"),
])
def test_bad_grid_syntax(items, fragment):
    with pytest.raises(SnnccError, match=fragment):
        parse_grid(items)


@pytest.mark.parametrize("changes, fragment", [
    ({"grid": {}}, "empty grid"),
    ({"grid": {"percentile": [1]}}, "unknown grid key 'percentile': expected T or PASS.OPTION"),
    ({"grid": {"calibrate.percentile": [1]}}, "no pass 'calibrate'"),
    ({"grid": {"convert.percentil": [99]}}, "pass 'convert' has no option 'percentil'"),
    ({"grid": {"T": [8, 0]}}, "positive integers"),
    ({"grid": {"T": [8.5]}}, "positive integers"),
    ({"grid": {"prune.sparsity": [0.5]}, "passes": ["convert"]},
     "pass 'prune' is not among the passes (convert)"),
    ({"options": {"convert": {"percentil": 99}}}, "unknown option convert.percentil"),
    ({"options": {"calibrate": {}}}, "unknown pass 'calibrate'"),
    ({"chips": ["loihi", "loihi"]}, "each chip may appear once"),
    ({"chips": ["loihi9"]}, "unknown chip 'loihi9'"),
    ({"model": REPO / "missing.onnx"}, "no such file"),
    ({"limit": 0}, "limit must be >= 1"),
])
def test_plan_rejects_bad_input_before_any_work(changes, fragment):
    with pytest.raises(SnnccError) as error:
        plan_sweep(spec(**changes))
    assert fragment in str(error.value)


def test_plan_lists_points_last_axis_fastest_and_adds_gridded_passes():
    plan = plan_sweep(spec(grid={"T": [4, 8], "prune.sparsity": [0.0, 0.5, 0.9]}))
    assert plan.passes == ["convert", "prune"]
    assert [point.params for point in plan.points][:3] == [
        {"T": 4, "prune.sparsity": 0.0}, {"T": 4, "prune.sparsity": 0.5},
        {"T": 4, "prune.sparsity": 0.9}]
    assert plan.points[4].timesteps == 8 and plan.points[4].options["prune"]["sparsity"] == 0.5
    assert len({point.key for point in plan.points}) == 6


def test_a_percentile_grid_selects_the_percentile_method_unless_one_is_given():
    plan = plan_sweep(spec())
    assert all(p.options["convert"]["threshold_method"] == "percentile" for p in plan.points)
    assert plan.notes and "threshold_method=percentile" in plan.notes[0]
    chosen = plan_sweep(spec(options={"convert": {"threshold_method": "mse"}}))
    assert chosen.points[0].options["convert"]["threshold_method"] == "mse"
    assert not chosen.notes


def test_pareto_front():
    costs, accuracies = [1.0, 2.0, 3.0, 2.0, 1.0], [0.90, 0.95, 0.94, 0.95, 0.80]
    assert pareto_front(costs, accuracies) == [True, True, False, True, False]


# ---------------------------------------------------------------------------- a serial sweep


@pytest.fixture(scope="module")
def serial_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "out"
    with Executor(workers=1) as executor:
        run = run_sweep(plan_sweep(spec()), out, executor)
    return out, run


def test_serial_sweep_measures_partitions_and_prices_every_point(serial_sweep):
    out, run = serial_sweep
    results = run.results
    jsonschema.validate(results, results_schema())
    assert run.computed == 4 and run.cached == 0 and run.failed == 0
    assert results["summary"] == {"points": 4, "ok": 4, "failed": 0, "cached": 0}
    assert results["executor"] == "serial" and results["dataset"] == "digits"
    for point in results["points"]:
        metrics = point["metrics"]
        assert metrics["samples"] == 360 and metrics["timesteps"] == point["params"]["T"]
        assert len(metrics["accuracy_curve"]) == point["params"]["T"]
        assert 0.5 < metrics["accuracy"] <= 1 and metrics["synops_per_sample"] > 0
        loihi, truenorth, loihi2 = point["chips"]
        assert loihi["fits"] and loihi["cores_used"] >= 1
        assert loihi["memory"]["synapse_memory_bits"] > 0
        assert loihi["energy_j"] > 0 and loihi["latency_s"] > 0
        assert truenorth["latency_s"] == pytest.approx(point["params"]["T"] * 1e-3)
        assert loihi2["energy_j"] is None and loihi2["latency_s"] is None
    assert any(point["chips"][0]["pareto_energy"] for point in results["points"])
    # a longer run of the same configuration costs more synaptic events
    by_t = {(p["params"]["T"], p["params"]["convert.percentile"]): p for p in results["points"]}
    assert (by_t[(8, 99.9)]["metrics"]["synops_per_sample"]
            > by_t[(4, 99.9)]["metrics"]["synops_per_sample"])


def test_results_files_csv_markdown_and_plots(serial_sweep):
    out, run = serial_sweep
    assert json.loads((out / "sweep.json").read_text()) == run.results
    rows = list(csv.DictReader(io.StringIO((out / "sweep.csv").read_text())))
    assert len(rows) == 4 and rows[0]["T"] == "4" and rows[0]["convert.percentile"] == "99.0"
    assert rows[0]["loihi:fits"] == "True" and "synapse memory" in rows[0]["loihi:memory"]
    assert rows[0]["loihi2:energy_j"] == "" and float(rows[0]["loihi:energy_j"]) > 0
    markdown = (out / "sweep.md").read_text()
    assert "Davies et al., IEEE Micro 38(1), 2018" in markdown and "Merolla" in markdown
    assert "not published" in markdown
    for name in ("accuracy_vs_T.png", "pareto_energy.png", "pareto_cores.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert not [p.name for p in out.rglob(".*")]  # no temporary files left behind


def test_a_second_run_reads_finished_points_from_the_cache(serial_sweep):
    out, first = serial_sweep
    calls = []

    def counting(task, model):
        from snncc.sweep import evaluate_point

        calls.append(task.params)
        return evaluate_point(task, model)

    wider = spec(grid={"T": [4, 8, 12], "convert.percentile": [99.0, 99.9]})
    with Executor(workers=1) as executor:
        run = run_sweep(plan_sweep(wider), out, executor, evaluate=counting, plots=False)
    assert run.cached == 4 and run.computed == 2
    assert sorted(call["convert.percentile"] for call in calls) == [99.0, 99.9]
    assert all(call["T"] == 12 for call in calls)
    old = {p["key"]: p["metrics"] for p in first.results["points"]}
    for point in run.results["points"]:
        if point["key"] in old:
            assert point["cached"] and point["metrics"] == old[point["key"]]


def test_points_of_one_process_share_their_leading_passes(tmp_path):
    """Two sparsities at one T and percentile: one conversion, the results of two whole runs."""
    from snncc import sweep

    plan = plan_sweep(spec(grid={"T": [4], "prune.sparsity": [0.5, 0.8]}))
    sweep.PASS_CACHE.clear()
    shared = [sweep.evaluate_point(task, plan.model) for task in plan.points]
    assert sweep.PASS_CACHE.hits == 1
    alone = []
    for task in plan.points:
        sweep.PASS_CACHE.clear()
        alone.append(sweep.evaluate_point(task, plan.model))
    assert sweep.PASS_CACHE.hits == 0
    for first, second in zip(shared, alone, strict=True):
        first.pop("wall_seconds"), second.pop("wall_seconds")
        assert first == second


def test_the_first_point_of_a_process_runs_its_passes_on_one_blas_thread(monkeypatch):
    """The engines' first call set BLAS to every core inside the point (rule 3 says one)."""
    from threadpoolctl import threadpool_info

    from snncc import sweep
    from snncc.engines import threads
    from snncc.passes import prune

    monkeypatch.setattr(threads, "_configured", None)  # as in a fresh process
    monkeypatch.setenv("SNNCC_THREADS", "2")
    loaded = {pool["filepath"] for pool in threadpool_info() if pool["user_api"] == "blas"}
    seen = []
    original = prune.reconstruct

    def reconstruct(*args, **kwargs):
        seen.extend(pool["num_threads"] for pool in threadpool_info()
                    if pool["filepath"] in loaded)
        return original(*args, **kwargs)

    monkeypatch.setattr(prune, "reconstruct", reconstruct)
    plan = plan_sweep(spec(grid={"T": [4], "prune.sparsity": [0.5]}))
    sweep.PASS_CACHE.clear()
    sweep.evaluate_point(plan.points[0], plan.model)
    assert seen and set(seen) == {1}


def test_a_failing_point_is_reported_and_the_rest_kept(tmp_path):
    def flaky(task, model):
        if task.index == 1:
            raise RuntimeError("boom\nsecond line")
        from snncc.sweep import evaluate_point

        return evaluate_point(task, model)

    with Executor(workers=1) as executor:
        run = run_sweep(plan_sweep(spec(grid={"T": [4, 6]})), tmp_path / "out", executor,
                        evaluate=flaky, plots=False)
    assert run.failed == 1 and run.computed == 1
    failed = run.results["points"][1]
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: boom"
    assert failed["metrics"] is None and failed["chips"] == []
    assert len(list((tmp_path / "out" / "cache").glob("*.json"))) == 1


def test_bad_input_in_a_point_ends_the_sweep_keeping_finished_points(tmp_path):
    def bad(task, model):
        if task.index == 1:
            raise SnnccError("prune: sparsity must be below 1")
        from snncc.sweep import evaluate_point

        return evaluate_point(task, model)

    with Executor(workers=1) as executor, pytest.raises(SnnccError) as error:
        run_sweep(plan_sweep(spec(grid={"T": [4, 6, 8]})), tmp_path / "out", executor,
                  evaluate=bad)
    message = str(error.value)
    assert message.startswith("prune: sparsity must be below 1 (1 finished point(s) kept in")
    assert "\n" not in message
    assert len(list((tmp_path / "out" / "cache").glob("*.json"))) == 1
    assert not (tmp_path / "out" / "sweep.json").exists()


def test_output_directory_problems_are_one_line_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with Executor(workers=1) as executor:
        with pytest.raises(SnnccError, match="a file of that name exists"):
            run_sweep(plan_sweep(spec()), tmp_path / "file", executor)
        with pytest.raises(SnnccError, match="does not exist"):
            run_sweep(plan_sweep(spec()), tmp_path / "no" / "out", executor)


# ---------------------------------------------------------------------------------- config


def test_config_sweep_table_with_dotted_and_quoted_grid_keys(tmp_path):
    import tomli

    text = """
model = "m.onnx"
[sweep]
chips = ["loihi", "custom.yaml"]
output = "results"
workers = 2
scheduler_timeout = 5
[sweep.grid]
T = [8, 16]
convert.percentile = [99.9, 99.99]
"prune.sparsity" = [0, 0.5]
"""
    config = parse_config(tomli.loads(text), tmp_path / "snncc.toml")
    assert config.sweep["grid"] == {"T": [8, 16], "convert.percentile": [99.9, 99.99],
                                    "prune.sparsity": [0, 0.5]}
    assert config.sweep["chips"] == ["loihi", str(tmp_path / "custom.yaml")]
    assert config.sweep["output"] == tmp_path / "results" and config.sweep["workers"] == 2


@pytest.mark.parametrize("table, fragment", [
    ("grid = { T = [] }", "key 'sweep.grid' must be a table of non-empty lists"),
    ("grid = [8, 16]", "key 'sweep.grid' must be a table of non-empty lists"),
    ("workers = '2'", "key 'sweep.workers' must be an integer"),
    ("shards = 2", "unknown key 'sweep.shards'"),
])
def test_config_sweep_table_errors(tmp_path, table, fragment):
    import tomli

    with pytest.raises(SnnccError, match=fragment.replace("(", r"\(")):
        parse_config(tomli.loads(f"[sweep]\n{table}\n"), tmp_path / "snncc.toml")


def test_model_bytes_travel_with_the_point_for_workers_without_the_file(tmp_path):
    """A worker that has no copy of the model writes one (with its sidecar) from the bytes."""
    from dataclasses import replace

    from snncc.loading import load_model
    from snncc.sweep import ModelFiles

    model = tmp_path / "digits_mlp.onnx"
    model.write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "digits_mlp.json").write_bytes(EXAMPLE.with_suffix(".json").read_bytes())
    files = ModelFiles.read(model)
    assert files.sidecar is not None and files.local_path() == model
    elsewhere = replace(files, path=str(tmp_path / "gone" / "digits_mlp.onnx"))
    copy = elsewhere.local_path()
    assert copy != model and copy.read_bytes() == model.read_bytes()
    assert copy.with_suffix(".json").read_bytes() == files.sidecar
    assert load_model(copy).metadata.get("dataset") == "digits"
