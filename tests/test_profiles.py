"""Hardware profiles: one declared place for a target's constraints, obeyed through pass options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_mlp_graph

from snncc import ir, pipeline
from snncc.backends import get_target, netx
from snncc.errors import SnnccError
from snncc.passes import REGISTRY, PassContext, run_passes
from snncc.passes.quantize import TARGETS
from snncc.profiles import LOIHI2_NETX, PROFILES, get_profile

REPO = Path(__file__).resolve().parents[1]


def test_every_profile_names_registered_passes_and_known_options():
    for profile in PROFILES.values():
        assert set(profile.passes) <= set(REGISTRY), profile.name
        assert set(profile.pass_options) <= set(profile.passes), profile.name
    assert get_target("lava").profile == "loihi2-netx"
    with pytest.raises(SnnccError, match="unknown profile 'x'; choose from loihi2-netx, lava-cpu"):
        get_profile("x")


def test_loihi2_netx_numbers_are_the_ones_quantize_and_the_netx_writer_use():
    limits = TARGETS[LOIHI2_NETX.pass_options["quantize"]["target"]]
    assert limits.bits[1] == LOIHI2_NETX.weight_bits == 8
    assert limits.exponent == LOIHI2_NETX.weight_exponent == (0, 1)
    assert (2 ** (limits.bits[1] - 1) - 1) * 2 ** limits.exponent[1] <= netx.NETX_WEIGHT_RANGE[1]
    assert limits.state_max == LOIHI2_NETX.state_max == netx.LIF_STATE_MAX == (2**23 - 1) >> 6
    assert limits.threshold_max == LOIHI2_NETX.threshold_max <= netx.VTH_MANT_MAX + 1
    assert 2 ** (limits.bias_mantissa_bits - 1) - 1 == LOIHI2_NETX.bias_max == netx.BIAS_MANT_MAX
    assert limits.per_layer_threshold and LOIHI2_NETX.reset == "zero"


def test_the_lava_target_runs_its_profile_and_explicit_options_win():
    ann = tiny_mlp_graph()
    sim, lava = get_target("sim"), get_target("lava")

    def passes(targets, profile=None):
        return pipeline.default_passes(ann, targets, pipeline.hardware_profile(targets, profile))

    assert passes([lava]) == list(LOIHI2_NETX.passes)
    assert passes([lava], "lava-cpu") == ["convert", "fold", "quantize"]
    assert passes([sim]) == ["convert"]
    assert passes([sim], "loihi2-netx") == list(LOIHI2_NETX.passes)
    assert passes([sim, lava]) == list(LOIHI2_NETX.passes)  # every target runs the same graph
    profile = pipeline.hardware_profile([lava])
    options = pipeline.pass_defaults([lava], {"quantize": {"target": "loihi"},
                                              "prune": {"sparsity": 0.5}}, profile)
    assert options["quantize"] == {"target": "loihi"} and options["prune"] == {"sparsity": 0.5}
    assert options["convert"] == {"coding": "rate"} and options["fold"] == {"per_channel": False}
    assert pipeline.pass_defaults([sim], None, pipeline.hardware_profile([sim])) == {}
    assert pipeline.hardware_profile([sim]) is None
    assert pipeline.hardware_profile([sim, lava]).name == "loihi2-netx"
    with pytest.raises(SnnccError, match="unknown profile"):
        pipeline.hardware_profile([sim], "loihi3")


def test_a_network_that_already_spikes_skips_convert_and_keeps_its_neurons():
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(6,), coding="latency", t_max=8)),
        ("fc1", ir.Dense(weight=np.array([[1, -1, 1, 1, -1, 1]] * 4))),
        ("if1", ir.IF(threshold=np.array([2]), v_init=np.array([0]), reset="zero",
                      fire_once=True)),
        ("fc2", ir.Dense(weight=np.array([[1, -1, 1, -1]] * 3))),
        ("readout", ir.Readout(mode="first_spike", threshold=np.array([1]))),
    )
    lava = get_target("lava")
    profile = pipeline.hardware_profile([lava])
    passes = pipeline.default_passes(graph, [lava], profile)
    assert "convert" not in passes and passes[0] == "pool_fold"
    samples = np.random.default_rng(0).integers(0, 256, (20, 6))
    deployed, results = run_passes(graph, passes, PassContext(
        calibration=samples, options=pipeline.pass_defaults([lava], None, profile)))
    assert not dict(results)["reset_zero"].changed
    np.testing.assert_array_equal(deployed.nodes["fc1"].weight, graph.nodes["fc1"].weight)
    assert any("fire-once neurons" in p for p in netx.inexpressible(deployed))


def test_calibration_samples_come_from_the_request_then_the_profile():
    netx_profile, cpu = get_profile("loihi2-netx"), get_profile("lava-cpu")
    assert pipeline.resolve_calibration_count(netx_profile) == 6000
    assert pipeline.resolve_calibration_count(cpu) == pipeline.CALIBRATION_COUNT == 2000
    assert pipeline.resolve_calibration_count(None) == 2000
    assert pipeline.resolve_calibration_count(netx_profile, 300) == 300
    for bad in (0, -5, True, 2.5):
        with pytest.raises(SnnccError, match="calibration samples must be an integer >= 1"):
            pipeline.resolve_calibration_count(None, bad)


def test_validate_and_compile_draw_the_resolved_number_of_calibration_samples(
        monkeypatch, tmp_path):
    drawn = []
    real = pipeline.calibration_samples

    def counting(graph, name, data_dir, count):
        drawn.append(count)
        return real(graph, name, data_dir, min(count, 64))  # small and fast, same code path

    monkeypatch.setattr(pipeline, "calibration_samples", counting)
    model = REPO / "examples" / "digits_mlp.onnx"
    pipeline.validate(model, limit=8, timesteps=8, ann_reference=False)
    pipeline.validate(model, limit=8, timesteps=8, ann_reference=False, profile="loihi2-netx")
    pipeline.validate(model, limit=8, timesteps=8, ann_reference=False, profile="loihi2-netx",
                      stages=True, calibration_count=100)
    pipeline.compile_model(model, tmp_path / "out", target="lava", timesteps=8)
    pipeline.compile_model(model, tmp_path / "out2", target="sim", timesteps=8,
                           calibration_count=123)
    assert drawn == [2000, 6000, 100, 6000, 123]
