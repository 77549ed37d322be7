"""Integer MNIST networks built by hand for the FPGA tests and benchmark.

They stand in for what the binarize/fold passes and the BSTDG loader produce (same IR shapes and
node settings), built from the shared ``mnist_mlp.onnx`` weights: every weight matrix becomes its
sign (±1); thresholds and biases are integers scaled so the network still classifies.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snncc import ir
from snncc.engines import run_ann


def _onnx_dense(models_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(Path(models_dir) / "mnist_mlp.onnx"))
    arrays = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    return [(arrays[f"{k}.weight"], arrays[f"{k}.bias"]) for k in (1, 4, 6)]


def binarized_mlp(models_dir: Path, calibration: np.ndarray, percentile: float = 99.0
                  ) -> ir.Graph:
    """Direct-coded 784-512-256-10 MLP with ±1 weights, integer biases and per-neuron thresholds.

    Layer ``l`` computes ``alpha_l[j] * sign(W_l) @ a + b_l`` (``alpha`` = mean |W| per row); the
    IF threshold is the ``percentile`` of that binarized ANN's activations, expressed in units of
    the integer synaptic sum (raw pixels for layer 1, spikes of the previous layer after that).
    """
    layers = _onnx_dense(models_dir)
    x = calibration.reshape(len(calibration), -1).astype(np.float64) / 255.0
    graph = ir.Graph({"source": "fpga test: binarized mnist_mlp"})
    graph.chain(("input", ir.Input(shape=(1, 28, 28), coding="direct")),
                ("flatten", ir.Flatten()))
    unit = 1.0 / 255.0  # value of one integer input unit in ANN units
    for index, (weight, bias) in enumerate(layers, start=1):
        alpha = np.abs(weight).mean(axis=1)
        signs = np.where(weight >= 0, 1, -1).astype(np.int64)
        pre = (x @ signs.T) * alpha + bias
        scale = alpha * unit  # ANN value of one unit of the integer sum, per neuron
        graph.chain((f"fc{index}", ir.Dense(weight=signs,
                                            bias=np.rint(bias / scale).astype(np.int64))))
        if index < len(layers):
            activation = np.maximum(pre, 0)
            lam = max(float(np.percentile(activation, percentile)), 1e-6)
            threshold = np.maximum(np.rint(lam / scale), 1).astype(np.int64)
            graph.chain((f"if{index}", ir.IF(threshold=threshold, v_init=np.zeros(1, np.int64),
                                             reset="subtract")))
            x, unit = np.minimum(activation, lam), lam  # next layer sees spikes worth lam
        else:
            graph.chain(("readout", ir.Readout(mode="potential",
                                               threshold=np.zeros(1, np.int64))))
    return graph


def bstdg_network(models_dir: Path, calibration: np.ndarray, hidden: int = 256,
                  t_max: int = 16) -> ir.Graph:
    """BSTDG-style single-spike network: latency input, ±1 weights, fire-once IF, first spike.

    Input(latency, t_max) -> Flatten -> Dense ±1 -> IF(fire_once, reset zero) -> Dense ±1 ->
    Readout(first_spike). Hidden weights are the signs of ``mnist_mlp``'s first layer (first
    ``hidden`` neurons); output weights the signs of the product of its last two layers
    restricted to them. Thresholds are chosen so about half the hidden neurons fire.
    """
    (w1, _), (w2, _), (w3, _) = _onnx_dense(models_dir)
    hidden_signs = np.where(w1[:hidden] >= 0, 1, -1).astype(np.int64)
    out_signs = np.where((w3 @ w2)[:, :hidden] >= 0, 1, -1).astype(np.int64)
    graph = ir.Graph({"source": "fpga test: BSTDG-style mnist network", "timesteps": t_max})
    graph.chain(("input", ir.Input(shape=(1, 28, 28), coding="latency", scale=1 / 255,
                                   t_max=t_max)),
                ("flatten", ir.Flatten()),
                ("fc1", ir.Dense(weight=hidden_signs)))
    # Calibrate on the total input each hidden neuron receives over the whole sample.
    spikes = (calibration.reshape(len(calibration), -1) > 0).astype(np.float64)
    totals = spikes @ hidden_signs.T
    threshold1 = np.maximum(np.rint(np.percentile(totals, 50, axis=0)), 1).astype(np.int64)
    graph.chain(("if1", ir.IF(threshold=threshold1, v_init=np.zeros(1, np.int64), reset="zero",
                              fire_once=True)),
                ("fc2", ir.Dense(weight=out_signs)))
    fired = (totals >= threshold1).astype(np.float64)
    threshold2 = max(int(np.rint(np.percentile(fired @ out_signs.T, 90))), 1)
    graph.chain(("readout", ir.Readout(mode="first_spike",
                                       threshold=np.array([threshold2], np.int64))))
    graph.validate(integer=True)
    return graph


def ann_accuracy(graph: ir.Graph, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the graph run as an ANN (a sanity check of the hand-made conversion)."""
    return float((run_ann(graph, images).argmax(axis=1) == labels).mean())
