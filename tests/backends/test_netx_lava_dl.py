"""Proof with the real loader: lava-dl's netx builds every emitted ``network.net`` and lava-nc runs
it (Loihi2SimCfg, fixed_pt) spike for spike like the reference simulator's integer mode.

The networks are compiled the way ``snncc compile MODEL --target lava`` compiles them (the lava
target's default profile, loihi2-netx, its passes and options) and written by the Lava backend's
``emit``. Skipped only when the ``netx`` extra (lava-dl) is not installed or ../shared is absent;
a file lava-dl refuses, or any differing spike or potential, fails.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from snncc import ir, pipeline
from snncc.datasets import load_dataset
from snncc.engines import simulate

HAVE_LAVA_DL = importlib.util.find_spec("lava") is not None and importlib.util.find_spec(
    "lava.lib.dl") is not None
pytestmark = [
    pytest.mark.lava,
    pytest.mark.skipif(not HAVE_LAVA_DL, reason="lava-dl is not installed (pip install "
                       "'snncc[netx]'; scripts/setup.sh installs it)"),
]

MODELS = ["mnist_mlp", "mnist_cnn_bn", "mnist_cnn_bn_unfused", "mnist_cnn_ratenorm"]
TIMESTEPS = 16
SAMPLES = 100
CALIBRATION = 500  # fewer than compile's 2,000: the proof is about exactness, not accuracy


def compile_for_lava(model_path, data_dir, out_dir, timesteps: int = TIMESTEPS) -> ir.Graph:
    """``snncc compile MODEL --target lava -T 16`` (with fewer calibration samples)."""
    return pipeline.compile_model(model_path, out_dir, target="lava", data_dir=str(data_dir),
                                  timesteps=timesteps, calibration_count=CALIBRATION).graph


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_lava_dl_runs_every_emitted_network_like_the_simulator(model, models_dir, data_dir,
                                                               tmp_path):
    from snncc.backends import netx
    from snncc.backends.netx_lava import agreement, reference_potentials, run_netx

    out = tmp_path / "out"
    graph = compile_for_lava(models_dir / f"{model}.onnx", data_dir, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["netx"] == "network.net", manifest["netx_inexpressible"]
    assert manifest["profile"] == "loihi2-netx" and manifest["loihi2_fit"]["fits"]
    assert manifest["netx_readout_parts"] == len(netx.readout_parts(graph)) >= 1
    assert netx.lint_netx(out / "network.net", graph) == []

    test = load_dataset("mnist", "test", data_dir).take(SAMPLES)
    inputs = pipeline.model_inputs(graph, test)
    reference = simulate(graph, inputs, TIMESTEPS, mode="integer", record=True)
    run = run_netx(out / "network.net", graph, inputs, TIMESTEPS, batch_size=50)

    hidden = graph.of_type(ir.IF)
    assert set(run.rasters) == set(hidden) and len(hidden) >= 2
    for name in hidden:
        np.testing.assert_array_equal(run.rasters[name], reference.rasters[name], err_msg=name)
        assert reference.rasters[name].any()
    np.testing.assert_array_equal(run.potentials, reference_potentials(graph, reference))
    assert agreement(graph, reference, run).all()
    np.testing.assert_array_equal(run.potentials[-1], reference.readout_state)
    np.testing.assert_array_equal(run.predictions, reference.predictions)


def test_a_direct_coded_leaky_network_with_a_spike_count_readout_runs_in_lava_dl(tmp_path):
    """CUBA neurons with their decays, raw integers as graded input spikes
    (``input_message_bits``), and a readout that counts the last layer's spikes: every layer's
    spikes equal the simulator's."""
    from snncc.backends import netx
    from snncc.backends.netx import input_message_bits
    from snncc.backends.netx_lava import agreement, run_netx

    rng = np.random.default_rng(4)
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(6,))),
                ("fc1", ir.Dense(weight=rng.integers(-8, 9, (5, 6)) * 2)),
                ("lif", ir.LIF(threshold=np.array([400]), dv=np.array([300]))),
                ("fc2", ir.Dense(weight=rng.integers(-8, 9, (3, 5)) * 2)),
                ("cuba", ir.CubaLIF(threshold=np.array([20]), du=np.array([512]),
                                    dv=np.array([100]))),
                ("readout", ir.Readout()))
    assert graph.input.coding == "direct" and input_message_bits(graph) == 8
    assert netx.inexpressible(graph) == []
    path = netx.write_netx(graph, tmp_path / "leaky.net")
    inputs = rng.integers(0, 256, (30, 6))
    reference = simulate(graph, inputs, 12, mode="integer", record=True)
    run = run_netx(path, graph, inputs, 12, batch_size=15)
    assert set(run.rasters) == {"lif", "cuba"}
    for name in ("lif", "cuba"):
        np.testing.assert_array_equal(run.rasters[name], reference.rasters[name], err_msg=name)
        assert reference.rasters[name].any() and not reference.rasters[name].all()
    assert agreement(graph, reference, run).all()
