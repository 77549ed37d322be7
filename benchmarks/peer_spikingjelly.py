"""SpikingJelly's ann2snn on a shared ONNX model: the peer figure for ``bench_conversion.py``.

Runs in a *separate* Python (3.11, with torch and spikingjelly; snncc is not imported), given by
``bench_conversion.py --spikingjelly-python`` or ``$SNNCC_SPIKINGJELLY_PYTHON``::

    python peer_spikingjelly.py MODEL.onnx INPUTS.npz T REPEATS

``INPUTS.npz`` holds ``test`` (preprocessed float32 test inputs), ``labels`` and ``calibration``
(preprocessed training samples). The ONNX graph (a chain of Conv, BatchNormalization, Relu,
MaxPool, AveragePool, Flatten/Reshape, Gemm) is rebuilt as ``torch.nn.Sequential``, converted
with ``RateCodingRecipe`` (threshold from the 99.9th activation percentile, IF neurons with
reset by subtraction), and run for T steps with the analog input as a constant current, on
torch's default CPU threads. Prints one JSON line: conversion seconds, samples/s (best of
REPEATS), accuracy and torch's thread count.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.ann2snn import Converter, RateCodingRecipe
from torch import nn


def _attributes(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def build(path: str) -> nn.Sequential:
    """The ONNX chain as torch modules (only the op types the shared CNNs and MLP use)."""
    model = onnx.load(path)
    weights = {t.name: torch.tensor(numpy_helper.to_array(t).copy())
               for t in model.graph.initializer}
    layers: list[nn.Module] = []
    for node in model.graph.node:
        attributes = _attributes(node)
        if node.op_type == "Conv":
            weight = weights[node.input[1]]
            pads = attributes.get("pads", [0, 0, 0, 0])
            conv = nn.Conv2d(weight.shape[1] * attributes.get("group", 1), weight.shape[0],
                             tuple(weight.shape[2:]), stride=tuple(attributes.get("strides", [1, 1])),
                             padding=(pads[0], pads[1]), groups=attributes.get("group", 1),
                             bias=len(node.input) > 2)
            conv.weight.data = weight
            if len(node.input) > 2:
                conv.bias.data = weights[node.input[2]]
            layers.append(conv)
        elif node.op_type == "BatchNormalization":
            norm = nn.BatchNorm2d(weights[node.input[1]].shape[0],
                                  eps=attributes.get("epsilon", 1e-5))
            norm.weight.data, norm.bias.data = weights[node.input[1]], weights[node.input[2]]
            norm.running_mean.data = weights[node.input[3]]
            norm.running_var.data = weights[node.input[4]]
            layers.append(norm)
        elif node.op_type == "Relu":
            layers.append(nn.ReLU())
        elif node.op_type in ("MaxPool", "AveragePool"):
            kind = nn.MaxPool2d if node.op_type == "MaxPool" else nn.AvgPool2d
            layers.append(kind(tuple(attributes["kernel_shape"]),
                               stride=tuple(attributes.get("strides", attributes["kernel_shape"]))))
        elif node.op_type in ("Flatten", "Reshape"):
            layers.append(nn.Flatten())
        elif node.op_type == "Gemm":
            weight = weights[node.input[1]]
            if not attributes.get("transB", 0):
                weight = weight.T
            linear = nn.Linear(weight.shape[1], weight.shape[0], bias=len(node.input) > 2)
            linear.weight.data = weight.contiguous()
            if len(node.input) > 2:
                linear.bias.data = weights[node.input[2]]
            layers.append(linear)
        elif node.op_type in ("Constant", "Identity", "Dropout"):
            continue
        else:
            raise SystemExit(json.dumps({"error": f"op {node.op_type} not supported here"}))
    return nn.Sequential(*layers).eval()


def main() -> None:
    path, inputs_path, timesteps, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
        int(sys.argv[4])
    data = np.load(inputs_path)
    test = torch.tensor(data["test"])
    calibration = torch.tensor(data["calibration"])
    ann = build(path)
    loader = [(calibration[i:i + 256], None) for i in range(0, len(calibration), 256)]
    start = time.perf_counter()
    with torch.no_grad():
        snn = Converter(RateCodingRecipe(loader, mode="99.9%")).convert(ann)
    convert_seconds = time.perf_counter() - start

    def run() -> np.ndarray:
        decisions = []
        with torch.no_grad():
            for i in range(0, len(test), 256):
                batch = test[i:i + 256]
                total = 0
                for _ in range(timesteps):
                    total = total + snn(batch)
                functional.reset_net(snn)
                decisions.append(total.argmax(1).numpy())
        return np.concatenate(decisions)

    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        decisions = run()
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"convert_seconds": convert_seconds, "samples_per_second": len(test) / best,
                      "accuracy": float((decisions == data["labels"]).mean()),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
