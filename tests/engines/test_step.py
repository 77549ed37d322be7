"""The reference simulator: every rule of docs/semantics.md on hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_cnn_graph, tiny_mlp_graph

from snncc import ir
from snncc.engines import run_ann, simulate
from snncc.errors import SnnccError


def _single_if_graph(threshold, v_init=0, reset="subtract", fire_once=False, weight=1):
    """input(1) -> Dense(w) -> IF -> Dense(1) -> Readout: the IF raster is easy to predict."""
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(1,))),
        ("fc", ir.Dense(weight=np.array([[weight]]))),
        ("if", ir.IF(threshold=np.array([threshold]), v_init=np.array([v_init]), reset=reset,
                     fire_once=fire_once)),
        ("out", ir.Dense(weight=np.array([[1]]))),
        ("readout", ir.Readout()),
    )
    return graph


def test_ann_mode_matches_numpy():
    graph = tiny_mlp_graph()
    x = np.random.default_rng(0).integers(0, 256, (7, 8))
    fc1, fc2 = graph.nodes["fc1"], graph.nodes["fc2"]
    hidden = np.maximum(x / 255 @ fc1.weight.T + fc1.bias, 0)
    np.testing.assert_allclose(run_ann(graph, x), hidden @ fc2.weight.T + fc2.bias)


def test_ann_mode_of_if_is_clipped_rate():
    graph = _single_if_graph(threshold=4.0)
    values = run_ann(graph, np.array([[2.0], [9.0], [-1.0]]), outputs=["if"])["if"]
    np.testing.assert_allclose(values[:, 0], [0.5, 1.0, 0.0])


def test_if_reset_by_subtraction_integer():
    # input 3 per step, threshold 5: v = 3, 6->1 (spike), 4, 7->2 (spike), 5->0 (spike)
    graph = _single_if_graph(threshold=5)
    result = simulate(graph, np.array([[3]]), 5, mode="integer", record=True)
    assert result.rasters["if"][:, 0, 0].tolist() == [0, 1, 0, 1, 1]
    assert result.readout_state[0, 0] == 3
    assert result.spike_counts["if"][0] == 3


def test_if_fires_on_equality_and_v_init():
    graph = _single_if_graph(threshold=4, v_init=2)
    result = simulate(graph, np.array([[2]]), 3, mode="integer", record=True)
    assert result.rasters["if"][:, 0, 0].tolist() == [1, 0, 1]


def test_if_reset_to_zero_and_fire_once():
    graph = _single_if_graph(threshold=5, reset="zero")
    result = simulate(graph, np.array([[3]]), 4, mode="integer", record=True)
    assert result.rasters["if"][:, 0, 0].tolist() == [0, 1, 0, 1]
    graph = _single_if_graph(threshold=5, fire_once=True)
    result = simulate(graph, np.array([[3]]), 6, mode="integer", record=True)
    assert result.rasters["if"][:, 0, 0].tolist() == [0, 1, 0, 0, 0, 0]


def test_integer_membrane_saturates_at_24_bits():
    graph = _single_if_graph(threshold=2**23 - 1, weight=-(2**22))
    graph.nodes["if"].threshold = np.array([2**23 - 1])
    result = simulate(graph, np.array([[3]]), 4, mode="integer")
    assert result.spike_counts["if"][0] == 0
    graph.nodes["out"].weight = np.array([[1]])
    graph = _single_if_graph(threshold=1, weight=2**22)
    graph.replace("out", ir.Dense(weight=np.array([[2**22]])))
    result = simulate(graph, np.array([[3]]), 3, mode="integer")
    assert result.readout_state[0, 0] == ir.STATE_MAX


def test_float_and_integer_modes_agree_on_integer_graph():
    graph = _single_if_graph(threshold=7, v_init=3)
    x = np.arange(20).reshape(20, 1)
    a = simulate(graph, x, 12, mode="integer", record=True)
    b = simulate(graph, x, 12, mode="float", record=True)
    np.testing.assert_array_equal(a.rasters["if"], b.rasters["if"])


def test_spiking_maxpool_counts_equal_max_of_counts():
    rng = np.random.default_rng(0)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(1, 4, 4), coding="rate")),
        ("pool", ir.MaxPool2d(kernel=2, stride=2)),
        ("flat", ir.Flatten()),
        ("fc", ir.Dense(weight=np.eye(4, dtype=np.int64))),
        ("readout", ir.Readout()),
    )
    x = rng.integers(0, 2, (5, 1, 4, 4)) * rng.random((5, 1, 4, 4))
    result = simulate(graph, x, 40, record=True)
    raster_in = result.rasters["input:input"].sum(axis=0)  # (N, 1, 4, 4) counts
    expected = raster_in.reshape(5, 1, 2, 2, 2, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(result.rasters["pool"].sum(axis=0), expected)
    assert set(np.unique(result.rasters["pool"])) <= {0, 1}


def test_first_spike_readout_ties_and_fallback():
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(3,))),
        ("fc", ir.Dense(weight=np.eye(3, dtype=np.int64))),
        ("readout", ir.Readout(mode="first_spike", threshold=np.array([6]))),
    )
    # sample 0: neurons 1 and 2 cross at step 1 (v=8 and v=6): larger v wins -> 1
    # sample 1: nobody crosses in 2 steps -> argmax v -> 2 ; sample 2: neuron 0 first at t=0
    x = np.array([[1, 4, 3], [0, 1, 2], [7, 0, 5]])
    result = simulate(graph, x, 2, mode="integer")
    assert result.predictions[-1].tolist() == [1, 2, 0]
    assert result.decision_time.tolist() == [1, 2, 0]


def test_batching_and_recording_do_not_change_results():
    graph = tiny_cnn_graph()
    for name in ("relu1", "relu2"):
        graph.replace(name, ir.IF(threshold=np.array([1.5]), v_init=np.array([0.5])))
    graph.add("readout", ir.Readout(), ["fc"])
    x = np.random.default_rng(2).integers(0, 256, (9, 1, 8, 8))
    a = simulate(graph, x, 10, batch_size=9, record=True)
    b = simulate(graph, x, 10, batch_size=2)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_array_equal(a.synops, b.synops)
    assert a.predictions.shape == (10, 9)


def test_synops_count_every_step_including_static_layers():
    graph = _single_if_graph(threshold=1)
    result = simulate(graph, np.array([[1], [0]]), 4, mode="integer")
    # sample 0: fc fires 1 synapse each step (4) + out gets a spike each step (4)
    assert result.synops.tolist() == [8, 0]


def test_integer_mode_rejects_float_graph_and_inputs():
    graph = _single_if_graph(threshold=1.5)
    with pytest.raises(SnnccError, match="non-integer"):
        simulate(graph, np.array([[1]]), 2, mode="integer")
    graph = _single_if_graph(threshold=2)
    with pytest.raises(SnnccError, match="integer input"):
        simulate(graph, np.array([[1.5]]), 2, mode="integer")


def test_input_shape_mismatch_and_missing_readout():
    graph = _single_if_graph(threshold=2)
    with pytest.raises(SnnccError, match="do not match the model input"):
        simulate(graph, np.zeros((2, 5)), 2)
    with pytest.raises(SnnccError, match="Readout"):
        simulate(tiny_mlp_graph(), np.zeros((1, 8)), 2)


def test_exact_integer_sums_beyond_float32():
    # sums above 2**24 must switch to float64 BLAS and stay exact
    weight = np.array([[2**21 + 1] * 16], dtype=np.int64)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(16,))),
        ("fc", ir.Dense(weight=weight)),
        ("readout", ir.Readout()),
    )
    x = np.full((1, 16), 3)
    result = simulate(graph, x, 1, mode="integer")
    assert result.readout_state[0, 0] == min(int((2**21 + 1) * 48), ir.STATE_MAX)
    small = ir.Graph().chain(("input", ir.Input(shape=(2,))),
                             ("fc", ir.Dense(weight=np.array([[2**20 + 1, 2**20 + 3]]))),
                             ("readout", ir.Readout()))
    out = simulate(small, np.array([[3, 1]]), 1, mode="integer").readout_state[0, 0]
    assert out == 3 * (2**20 + 1) + 2**20 + 3


# ------------------------------------------------------------- compiled kernels (issue 23)


@pytest.mark.parametrize("kernel, stride, padding", [
    (2, 2, 0), (3, 2, (1, 1, 1, 1)), ((3, 2), (1, 2), (1, 0, 1, 1)), ((2, 3), (3, 1), (0, 1, 0, 1))])
def test_spike_pool_kernels_equal_the_array_rules(kernel, stride, padding):
    from snncc.engines import step

    spikes = (np.random.default_rng(1).random((7, 3, 2, 9, 8)) < 0.3).astype(np.uint8)
    node = ir.MaxPool2d(kernel=kernel, stride=stride, padding=padding)
    fast, totals = step._run_max_pool(node, spikes, np.float32)
    assert fast.dtype == np.uint8
    array_rule, none = step._run_max_pool(node, spikes.astype(np.float32), np.float32)
    np.testing.assert_array_equal(fast, array_rule)
    assert none is None
    np.testing.assert_array_equal(totals, fast.sum(axis=0))
    pool = ir.SumPool2d(kernel=kernel, stride=stride, padding=padding, scale=1 / 9)
    fast, active = step._run_sum_pool(pool, spikes, np.float32)
    array_rule = step.sum_pool(step._merged(spikes).astype(np.float32), pool) * pool.scale
    np.testing.assert_array_equal(fast, array_rule.reshape(fast.shape))
    np.testing.assert_array_equal(active, np.count_nonzero(fast, axis=0))


@pytest.mark.parametrize("mode", ["float", "integer"])
@pytest.mark.parametrize("kernel", [2, 3, (2, 1), (1, 3)])
@pytest.mark.parametrize("conv_event_density", [0.0, 1.0])  # IF after BLAS conv / fused conv
def test_sum_pool_fused_into_its_if_kernel_changes_no_result(mode, kernel, conv_event_density,
                                                            monkeypatch):
    """An IF node read only by a sum pool that tiles its spikes pools them inside its kernel
    (unless its spikes are recorded): every value the run reports is the same either way."""
    from snncc.engines import step

    monkeypatch.setattr(step, "CONV_EVENT_DENSITY", conv_event_density)
    rng = np.random.default_rng(9)
    pool_size = int(np.prod(ir.SumPool2d(kernel=kernel, stride=kernel).kernel))
    integer = mode == "integer"
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(2, 13, 12), coding="rate", scale=1 / 255)),  # 13: a row left
        ("conv1", ir.Conv2d(weight=rng.integers(-2, 5, (3, 2, 3, 3)), bias=np.ones(3, np.int64),
                            padding=1)),
        ("if1", ir.IF(threshold=np.array([3, 5, 4]), v_init=np.array([1]))),
        ("pool1", ir.SumPool2d(kernel=kernel, stride=kernel,
                               scale=1.0 if integer else 1 / pool_size)),
        ("conv2", ir.Conv2d(weight=rng.integers(-3, 5, (4, 3, 3, 3)), padding=1)),
        ("if2", ir.IF(threshold=np.array([4]), v_init=np.array([0]))),
        ("pool2", ir.SumPool2d(kernel=kernel, stride=kernel,
                               scale=1.0 if integer else 1 / pool_size)),
        ("flatten", ir.Flatten()),
    )
    size = int(np.prod(graph.infer_shapes()["flatten"]))
    graph.chain(("fc", ir.Dense(weight=rng.integers(-2, 3, (3, size)))),
                ("readout", ir.Readout()))
    assert step._Plan(graph, mode, 1.0).pooled == {"if1": "pool1", "if2": "pool2"}
    raw = rng.integers(0, 256, (9, 2, 13, 12))
    fused = simulate(graph, raw, 10, mode=mode, batch_size=4, count_neurons=True)
    apart = simulate(graph, raw, 10, mode=mode, batch_size=4, count_neurons=True, record=True)
    np.testing.assert_array_equal(fused.predictions, apart.predictions)
    np.testing.assert_array_equal(fused.readout_state, apart.readout_state)
    np.testing.assert_array_equal(fused.synops, apart.synops)
    assert fused.neuron_counts.keys() == apart.neuron_counts.keys() >= {"if1", "if2"}
    for name, counts in fused.neuron_counts.items():
        np.testing.assert_array_equal(counts, apart.neuron_counts[name])
        np.testing.assert_array_equal(fused.spike_counts[name], apart.spike_counts[name])


@pytest.mark.parametrize("mode", ["float", "integer"])
def test_results_do_not_depend_on_the_thread_count(mode):
    import numba

    from snncc.engines import threads

    graph = _converted_cnn(integer=mode == "integer")
    raw = np.random.default_rng(4).integers(0, 256, (23, 1, 8, 8))
    results = []
    try:
        for count in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            threads.configure(count)
            results.append(simulate(graph, raw, 12, mode=mode, batch_size=7,
                                    count_neurons=True))
    finally:
        threads.configure()
    first, second = results
    np.testing.assert_array_equal(first.predictions, second.predictions)
    np.testing.assert_array_equal(first.readout_state, second.readout_state)
    for name, counts in first.neuron_counts.items():
        np.testing.assert_array_equal(counts, second.neuron_counts[name])


def test_segments_reproduce_a_whole_run_from_stored_values():
    from snncc.engines.step import Segments

    graph = _converted_cnn(integer=False)
    raw = np.random.default_rng(5).integers(0, 256, (9, 1, 8, 8))
    whole = simulate(graph, raw, 10, batch_size=4, count_neurons=True)
    segments = Segments(graph, raw, 10, batch_size=4)
    assert segments.batches == [(0, 4), (4, 8), (8, 9)]
    order = graph.topological_order()
    first = set(order[:order.index("relu1") + 1])
    rest = set(order) - first - {"readout"}
    for batch, (start, stop) in enumerate(segments.batches):
        kept, counts = segments.run(batch, first, {}, keep=("relu1",))
        np.testing.assert_array_equal(counts["relu1"], whole.neuron_counts["relu1"][start:stop])
        _, counts = segments.run(batch, rest, kept)
        np.testing.assert_array_equal(counts["relu2"], whole.neuron_counts["relu2"][start:stop])


def _converted_cnn(integer: bool) -> ir.Graph:
    """tiny_cnn converted (no bias correction), optionally folded to an integer graph."""
    from snncc.passes import PassContext, run_passes

    calibration = np.random.default_rng(6).integers(0, 256, (40, 1, 8, 8))
    passes = ["convert", "fold"] if integer else ["convert"]
    context = PassContext(calibration=calibration, timesteps=12,
                          options={"convert": {"bias_correction": False}})
    graph, _ = run_passes(tiny_cnn_graph(), passes, context)
    return graph


_REALLOCATE = """
import resource, numpy as np
def faults():
    # 40 arrays of 3 MB (below numpy's huge-page size), freed together, then allocated again
    arrays = [np.ones(3 * 2**20, np.uint8) for _ in range(40)]
    del arrays
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    arrays = [np.ones(3 * 2**20, np.uint8) for _ in range(40)]
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
"""


def test_freed_batch_memory_is_reused_without_page_faults():
    """After the engines' runtime setup, freed batch arrays are handed out again by the allocator
    instead of being returned to the kernel and faulted in page by page
    (:func:`snncc.engines.threads.keep_freed_memory`)."""
    import subprocess
    import sys

    from snncc.engines import threads

    threads.configure()
    if not threads.keep_freed_memory():
        pytest.skip("the C library is not glibc: its allocator has no mallopt")
    pages = 40 * 3 * 2**20 // 4096
    plain = subprocess.run([sys.executable, "-c", _REALLOCATE + "print(faults())"],
                           capture_output=True, text=True, check=True)
    if int(plain.stdout) < pages // 2:
        pytest.skip("this system's allocator keeps freed memory by itself")
    scope: dict = {}
    exec(_REALLOCATE, scope)
    assert scope["faults"]() < pages // 20


def test_integer_batches_are_larger_and_change_no_result():
    from snncc.engines import step

    graph = _converted_cnn(integer=True)
    shapes = graph.infer_shapes()
    largest = max(int(np.prod(shape)) for shape in shapes.values())
    timesteps = step.ACTIVATION_BYTES // (8 * largest * 3)  # float mode: 3 samples per batch
    assert step.batch_rows(shapes, timesteps) == 3
    assert step.batch_rows(shapes, timesteps, mode="integer") == 12
    raw = np.random.default_rng(8).integers(0, 256, (23, 1, 8, 8))
    whole = simulate(graph, raw, 12, mode="integer", count_neurons=True)
    for batch_size in (1, 5):
        batched = simulate(graph, raw, 12, mode="integer", count_neurons=True,
                           batch_size=batch_size)
        np.testing.assert_array_equal(batched.predictions, whole.predictions)
        np.testing.assert_array_equal(batched.readout_state, whole.readout_state)
        np.testing.assert_array_equal(batched.synops, whole.synops)
        for name, counts in whole.neuron_counts.items():
            np.testing.assert_array_equal(batched.neuron_counts[name], counts)
