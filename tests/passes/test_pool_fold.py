"""Rules of the pool_fold pass (snncc/passes/pool_fold.py): pooling folded exactly into the reader."""

from __future__ import annotations

import numpy as np
import pytest

from snncc import ir, pipeline
from snncc.datasets import load_dataset
from snncc.engines import run_ann, simulate
from snncc.passes import PassContext, run_passes
from snncc.passes.pool_fold import pool_fold


def _fold(graph: ir.Graph) -> tuple[ir.Graph, dict]:
    result = pool_fold(graph, PassContext())
    return result.graph, result.info


def _pool_then(reader: str, *, pool_kernel: int = 2, pool_stride: int = 2, size: int = 8,
               padding: int = 1, stride: int = 1, dilation: int = 1) -> ir.Graph:
    """Input -> Conv -> ReLU -> SumPool -> (Conv -> ReLU ->) Flatten -> Dense: a float ANN."""
    rng = np.random.default_rng(7)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(2, size, size))),
        ("conv1", ir.Conv2d(weight=rng.normal(size=(3, 2, 3, 3)), bias=rng.normal(size=3),
                            padding=1)),
        ("relu1", ir.ReLU()),
        ("pool", ir.SumPool2d(kernel=pool_kernel, stride=pool_stride, scale=1 / pool_kernel**2)),
    )
    if reader == "conv":
        graph.chain(
            ("conv2", ir.Conv2d(weight=rng.normal(size=(4, 3, 3, 3)), bias=rng.normal(size=4),
                                padding=padding, stride=stride, dilation=dilation)),
            ("relu2", ir.ReLU()),
        )
    graph.chain(("flatten", ir.Flatten()))
    width = int(np.prod(graph.infer_shapes()["flatten"]))
    graph.chain(("fc", ir.Dense(weight=rng.normal(size=(5, width)), bias=rng.normal(size=5))))
    return graph


@pytest.mark.parametrize("reader, options", [
    ("dense", {}),
    ("dense", {"pool_kernel": 3, "pool_stride": 2, "size": 9}),  # overlapping windows
    ("dense", {"size": 9}),  # a map row outside every window gets weight 0
    ("conv", {}),
    ("conv", {"padding": 0, "stride": 2}),
    ("conv", {"padding": 2, "dilation": 2}),
    ("conv", {"padding": 0, "pool_kernel": 3, "pool_stride": 2, "size": 9}),
])
def test_rules_1_2_folded_ann_computes_the_same(reader, options):
    graph = _pool_then(reader, **options)
    folded, info = _fold(graph)
    assert not folded.of_type(ir.SumPool2d) and info["folded"] == {
        "pool": "conv2" if reader == "conv" else "fc"}
    raw = np.random.default_rng(0).normal(size=(16,) + graph.input.shape)
    np.testing.assert_allclose(run_ann(folded, raw), run_ann(graph, raw), rtol=1e-10, atol=1e-10)
    if reader == "conv":
        conv = folded.nodes["conv2"]
        assert conv.stride == (2 * options.get("stride", 1),) * 2 and conv.dilation == (1, 1)


@pytest.mark.parametrize("options, reason", [
    ({"pool_kernel": 3, "pool_stride": 2, "size": 9, "padding": 1}, "overlap the padding"),
    ({"size": 9, "padding": 1}, "outside every pool window"),
])
def test_rule_2_inexact_conv_folds_are_left_with_the_reason(options, reason):
    graph = _pool_then("conv", **options)
    folded, info = _fold(graph)
    assert folded.of_type(ir.SumPool2d) == ["pool"] and reason in info["kept"]["pool"]


def test_rule_3_pools_read_by_something_else_stay_and_max_pools_are_untouched():
    graph = _pool_then("dense")
    graph.add("pool_b", ir.SumPool2d(kernel=2, stride=2), ["relu1"])
    graph.add("sum", ir.Add(), ["pool", "pool_b"])
    graph.set_inputs("flatten", ["sum"])
    folded, info = _fold(graph)
    assert set(info["kept"]) == {"pool", "pool_b"} and not info["folded"]
    graph = _pool_then("dense")
    graph.replace("pool", ir.MaxPool2d(kernel=2, stride=2))
    folded, info = _fold(graph)
    assert folded.of_type(ir.MaxPool2d) == ["pool"] and info == {"folded": {}, "kept": {}}


def test_pool_fold_never_mutates_its_input_and_a_second_run_changes_nothing():
    graph = _pool_then("conv")
    before = graph.nodes["conv2"].weight.copy()
    folded, _ = _fold(graph)
    assert graph.of_type(ir.SumPool2d) == ["pool"]
    np.testing.assert_array_equal(graph.nodes["conv2"].weight, before)
    assert not pool_fold(folded, PassContext()).changed


@pytest.fixture(scope="module")
def mnist_cnn(models_dir, data_dir):
    """mnist_cnn_bn (two average pools: into a Conv and, through Flatten, a Dense), 64 test images
    and 300 calibration images, the SNN converted with rate coding (0/1 input spikes)."""
    source = pipeline.load_model(models_dir / "mnist_cnn_bn.onnx")
    test = load_dataset("mnist", "test", data_dir).take(64)
    calibration = pipeline.calibration_samples(source, "mnist", str(data_dir), 300)
    return source, pipeline.model_inputs(source, test), calibration


def test_real_cnn_ann_float_and_integer_spikes_identical_before_and_after(mnist_cnn):
    source, inputs, calibration = mnist_cnn
    context = PassContext(calibration=calibration, timesteps=12,
                          options={"convert": {"coding": "rate", "bias_correction": False}})
    folded, info = _fold(source)
    assert len(info["folded"]) == 2 and not info["kept"]
    np.testing.assert_allclose(run_ann(folded, inputs), run_ann(source, inputs), rtol=1e-9,
                               atol=1e-9)

    snn, _ = run_passes(source, ["convert"], context)
    # Float32 sums in another order may round differently: on weights and thresholds that are
    # small multiples of 2**-6 every partial sum is exact, so the spikes must match exactly.
    for name in snn.of_type(*ir.SYNAPTIC):
        node = snn.nodes[name]
        node.weight = np.round(node.weight * 64) / 64
        node.bias = None if node.bias is None else np.round(node.bias * 64) / 64
    for name in snn.of_type(ir.IF):
        snn.nodes[name].threshold = np.maximum(np.round(snn.nodes[name].threshold * 64), 1) / 64
        snn.nodes[name].v_init = np.round(snn.nodes[name].v_init * 64) / 64
    _assert_same_spikes(snn, _fold(snn)[0], inputs, "float")

    integer, _ = run_passes(snn, ["fold"], context)
    folded_integer, _ = _fold(integer)
    assert folded_integer.is_integer() and not folded_integer.of_type(ir.SumPool2d)
    _assert_same_spikes(integer, folded_integer, inputs, "integer")


def _assert_same_spikes(before: ir.Graph, after: ir.Graph, inputs: np.ndarray, mode: str) -> None:
    first = simulate(before, inputs, 12, mode=mode, record=True)
    second = simulate(after, inputs, 12, mode=mode, record=True)
    assert set(second.rasters) <= set(first.rasters) and len(second.rasters) >= 4
    for name, raster in second.rasters.items():
        np.testing.assert_array_equal(raster, first.rasters[name], err_msg=f"{mode} {name}")
    np.testing.assert_array_equal(second.readout_state, first.readout_state)
    assert first.spikes_per_sample > 0
