"""Today's figures, kept: conversion and simulation of every shared model against a fingerprint.

``reference_results.json`` holds today's figures as the convert pass computed them before the
issue-23 work (its code of commit f87e933, holding every activation in memory and re-simulating
the whole network per corrected layer), run on an engine proven equal to that commit's sample for
sample (``recorded_at``), with BLAS on one thread (``OPENBLAS_NUM_THREADS=1``: a multi-threaded
BLAS changes float sums in their last bits, so float results then varied with the core count;
the engines now always run BLAS on one thread). For every shared ONNX model at T=32 it holds, per
graph (``sim``: default passes for the sim target; ``lava``: the lava target's integer graph), a
sha256 of every array of every node (thresholds, biases, weights, ``v_init``), and per mode (float
on the sim graph, integer on the lava graph) on the first ``SAMPLES`` test images: the accuracy
and sha256 of the decisions after every step, the spike counts per layer and sample, the synaptic
events per sample and the final readout state. A faster engine or a streamed calibration must
reproduce every one of them bit for bit.

Rewrite the fixture (only when a change of results is intended and explained in the commit)::

    python tests/engines/test_reference_results.py --write [models...]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from snncc import ir

FIXTURE = Path(__file__).with_name("reference_results.json")
SAMPLES = 300
TIMESTEPS = 32
MODELS = ["mnist_mlp", "mnist_cnn_ratenorm", "mnist_cnn_bn", "mnist_cnn_bn_unfused",
          "fashion_cnn_maxpool"]
MODES = {"float": ("sim", "float"), "integer": ("lava", "integer")}


def digest(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes (C order)."""
    array = np.ascontiguousarray(array)
    head = f"{array.dtype.str}{array.shape}".encode()
    return hashlib.sha256(head + array.tobytes()).hexdigest()


def graph_fingerprint(graph: ir.Graph) -> dict[str, dict[str, str]]:
    """Per node: its type and the digest of every array field."""
    result = {}
    for name in graph.topological_order():
        node = graph.nodes[name]
        entry = {"type": type(node).__name__}
        for field in dataclasses.fields(node):
            value = getattr(node, field.name)
            if isinstance(value, np.ndarray):
                entry[field.name] = digest(value)
        result[name] = entry
    return result


def result_fingerprint(result) -> dict:
    """Accuracy, and digests of decisions, spike counts, synops and readout state."""
    return {
        "accuracy": result.accuracy,
        "predictions": digest(result.predictions),
        "synops": digest(result.synops),
        "synops_per_sample": float(result.synops.mean()),
        "readout_state": digest(result.readout_state),
        "spikes": {name: digest(counts) for name, counts in sorted(result.spike_counts.items())},
        "spikes_per_sample": result.spikes_per_sample,
    }


def convert_graphs(stem: str, models_dir: Path, data_dir: Path) -> tuple[ir.Graph, ir.Graph]:
    """The sim and lava targets' deployed graphs with their default passes at T=32."""
    from snncc.backends import get_target
    from snncc.pipeline import default_passes, hardware_profile, load_model, pass_defaults, prepare

    source = load_model(models_dir / f"{stem}.onnx")
    dataset = source.metadata["dataset"]
    graphs = []
    # lava: the lava-cpu profile (convert, fold, quantize for snncc's own ProcessModels), the
    # pipeline these fingerprints were recorded with
    for name, profile in (("sim", None), ("lava", "lava-cpu")):
        targets = [get_target(name)]
        chosen = hardware_profile(targets, profile)
        graph, _ = prepare(source, default_passes(source, targets, chosen), dataset=dataset,
                           data_dir=str(data_dir), timesteps=TIMESTEPS,
                           options=pass_defaults(targets, None, chosen))
        graphs.append(graph)
    return graphs[0], graphs[1]


def fingerprint(stem: str, models_dir: Path, data_dir: Path,
                graphs: tuple[ir.Graph, ir.Graph] | None = None) -> dict:
    """The whole fingerprint of one model (conversion, then simulation in both modes)."""
    from snncc.datasets import load_dataset
    from snncc.engines import simulate
    from snncc.pipeline import model_inputs

    sim_graph, lava_graph = graphs or convert_graphs(stem, models_dir, data_dir)
    by_target = {"sim": sim_graph, "lava": lava_graph}
    test = load_dataset(sim_graph.metadata["dataset"], "test", str(data_dir)).take(SAMPLES)
    inputs = model_inputs(sim_graph, test)
    entry: dict = {"graphs": {t: graph_fingerprint(g) for t, g in by_target.items()}}
    for mode, (target, engine_mode) in MODES.items():
        result = simulate(by_target[target], inputs, TIMESTEPS, mode=engine_mode,
                          labels=test.labels)
        entry[mode] = result_fingerprint(result)
    return entry


def _reference() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("stem", MODELS)
def test_conversion_and_simulation_reproduce_the_reference(stem, models_dir, data_dir):
    expected = _reference()["models"][stem]
    actual = fingerprint(stem, models_dir, data_dir)
    for target, nodes in expected["graphs"].items():
        assert actual["graphs"][target] == nodes, f"{stem}: {target} graph arrays changed"
    for mode in MODES:
        assert actual[mode] == expected[mode], f"{stem}: {mode} mode results changed"


def main(argv: list[str]) -> None:
    """``--write [models...]``: record the fingerprints of today's code into the fixture."""
    import subprocess

    if not argv or argv[0] != "--write":
        raise SystemExit(__doc__)
    repo = Path(__file__).resolve().parents[2]
    shared = repo.parent / "shared"
    stems = argv[1:] or MODELS
    data = _reference() if FIXTURE.exists() else {"models": {}}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                            text=True).stdout.strip()
    data.update({"samples": SAMPLES, "timesteps": TIMESTEPS, "recorded_at": commit})
    for stem in stems:
        data["models"][stem] = fingerprint(stem, shared / "models", shared / "datasets")
        print(stem, {mode: data["models"][stem][mode]["accuracy"] for mode in MODES}, flush=True)
        FIXTURE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
