"""Build the bundled example: an MLP trained on scikit-learn's 8x8 digits, exported to ONNX.

Run from the repository root: ``python examples/make_digits_mlp.py`` (deterministic; rewrites
``examples/digits_mlp.onnx`` and its sidecar ``examples/digits_mlp.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.neural_network import MLPClassifier

from snncc.datasets import load_dataset

HERE = Path(__file__).resolve().parent


def main() -> None:
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    x_train = train.images.reshape(len(train), -1) / 255.0
    x_test = test.images.reshape(len(test), -1) / 255.0
    mlp = MLPClassifier(hidden_layer_sizes=(64, 32), activation="relu", alpha=1e-3,
                        max_iter=600, random_state=0)
    mlp.fit(x_train, train.labels)
    accuracy = float(mlp.score(x_test, test.labels))

    initializers = []
    nodes = [helper.make_node("Flatten", ["image"], ["flat"], name="flatten", axis=1)]
    previous = "flat"
    for index, (weight, bias) in enumerate(zip(mlp.coefs_, mlp.intercepts_, strict=True)):
        initializers += [
            numpy_helper.from_array(weight.T.astype(np.float32), f"fc{index}.weight"),
            numpy_helper.from_array(bias.astype(np.float32), f"fc{index}.bias"),
        ]
        last = index == len(mlp.coefs_) - 1
        out = "logits" if last else f"fc{index}"
        nodes.append(helper.make_node("Gemm", [previous, f"fc{index}.weight", f"fc{index}.bias"],
                                      [out], name=f"fc{index}", transB=1))
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"relu{index}"], name=f"relu{index}"))
            out = f"relu{index}"
        previous = out
    graph = helper.make_graph(
        nodes, "digits_mlp",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializers,
    )
    model = helper.make_model(graph, producer_name="snncc-example",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, HERE / "digits_mlp.onnx")
    sidecar = {
        "dataset": "digits",
        "input": "image",
        "input_shape": [1, 8, 8],
        "layout": "NCHW",
        "preprocess": {"scale": 1 / 255, "mean": 0.0, "std": 1.0},
        "ann_test_accuracy": accuracy,
        "test_samples": len(test),
        "exporter": "scikit-learn MLPClassifier + onnx.helper (examples/make_digits_mlp.py)",
        "opset": 13,
        "ops": ["Flatten", "Gemm", "Relu"],
    }
    (HERE / "digits_mlp.json").write_text(json.dumps(sidecar, indent=1) + "\n")
    print(f"digits_mlp.onnx: test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
