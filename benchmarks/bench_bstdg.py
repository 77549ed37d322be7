"""Inference speed: event-driven TTFS simulation of a BSTDG network vs onnxruntime's dense pass.

Runs the whole test set through :func:`snncc.engines.ttfs.simulate_ttfs` (integer mode, one
thread) and, in the same process, onnxruntime (one intra-op thread) on a dense float32 ANN with the
same layer sizes (MatMul -> Relu -> MatMul, random weights: only the speed matters); each side
is timed `--repeats` times and its fastest run counts. Prints
accuracy, spikes, decision time, both throughputs and their ratio, and the accuracy when the same
network is run with fewer steps (input t_max reduced).

    PYTHONPATH=. python benchmarks/bench_bstdg.py --model examples/mnist_784_600_10.bstdg.h5 \\
        --dataset mnist --data-dir ../shared/datasets
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np


def dense_onnx(sizes: list[int]) -> bytes:
    """A float32 MLP ``x -> MatMul -> Relu -> ... -> MatMul`` with the given layer sizes."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, initializers = [], []
    previous = "x"
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        weight = rng.choice([-1.0, 1.0], (fan_in, fan_out)).astype(np.float32)
        initializers.append(numpy_helper.from_array(weight, f"w{index}"))
        output = f"h{index}"
        nodes.append(helper.make_node("MatMul", [previous, f"w{index}"], [output]))
        previous = output
        if index < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [output], [f"r{index}"]))
            previous = f"r{index}"
    graph = helper.make_graph(
        nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, sizes[0]])],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, [None, sizes[-1]])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    return model.SerializeToString()


def main() -> None:
    from snncc import ir
    from snncc.datasets import arrange, load_dataset
    from snncc.engines.ttfs import simulate_ttfs
    from snncc.frontend.bstdg import load_bstdg

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help=".bstdg.h5 network")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--limit", type=int, default=None, help="first N test samples")
    parser.add_argument("--reduced", default="64,32", help="t_max values to also evaluate")
    parser.add_argument("--batch-size", type=int, default=1000, help="onnxruntime batch size")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs of each side; the fastest counts (this box is noisy)")
    args = parser.parse_args()

    graph = load_bstdg(args.model)
    test = load_dataset(args.dataset, "test", args.data_dir).take(args.limit)
    raw = arrange(test.images, graph.input.shape)
    t_max = graph.input.t_max

    simulate_ttfs(graph, raw[:10])  # compile the kernels outside the timing
    ttfs_seconds = math.inf
    for _ in range(args.repeats):
        started = time.perf_counter()
        result = simulate_ttfs(graph, raw, labels=test.labels)
        ttfs_seconds = min(ttfs_seconds, time.perf_counter() - started)
    hidden = [name for name in result.spike_times if not name.startswith("input:")]

    import onnxruntime as ort

    sizes = [int(np.prod(graph.input.shape))]
    sizes += [int(graph.nodes[name].weight.shape[0]) for name in graph.of_type(ir.Dense)]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(dense_onnx(sizes), options, providers=["CPUExecutionProvider"])
    x = (raw.reshape(len(raw), -1) / 255.0).astype(np.float32)
    session.run(None, {"x": x[:10]})
    ort_seconds = math.inf
    for _ in range(args.repeats):
        started = time.perf_counter()
        for start in range(0, len(x), args.batch_size):
            session.run(None, {"x": x[start:start + args.batch_size]})
        ort_seconds = min(ort_seconds, time.perf_counter() - started)

    print(f"network {args.model}: {'-'.join(map(str, sizes))}, t_max {t_max}, "
          f"{len(raw)} {args.dataset} test samples")
    print(f"accuracy (t_max {t_max}): {result.accuracy:.2%}")
    for name in hidden:
        print(f"{name}: {result.spike_counts[name].mean():.1f} spikes per sample "
              f"(of {result.spike_times[name][0].size} neurons)")
    input_key = f"input:{graph.input_name}"
    print(f"input spikes per sample: {result.spike_counts[input_key].mean():.1f}; "
          f"synaptic events per sample: {result.synops.mean():.0f}")
    print(f"mean decision time: {result.mean_decision_time:.1f} steps of {t_max} "
          f"(no output spike: {np.mean(result.decision_time >= t_max):.2%})")
    for reduced in [int(v) for v in args.reduced.split(",") if v]:
        shorter = graph.copy()
        shorter.input.t_max = reduced
        reduced_result = simulate_ttfs(shorter, raw, labels=test.labels)
        print(f"accuracy (same network, t_max {reduced}): {reduced_result.accuracy:.2%}, "
              f"mean decision time {reduced_result.mean_decision_time:.1f}")
    ttfs_rate = len(raw) / ttfs_seconds
    ort_rate = len(raw) / ort_seconds
    print(f"event-driven TTFS simulation: {ttfs_rate:,.0f} samples/s ({ttfs_seconds:.2f} s)")
    print(f"onnxruntime dense forward:    {ort_rate:,.0f} samples/s ({ort_seconds:.2f} s)")
    print(f"ratio onnxruntime / TTFS: {ort_rate / ttfs_rate:.2f}x")


if __name__ == "__main__":
    main()
