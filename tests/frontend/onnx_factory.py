"""Small ONNX models built with ``onnx.helper`` in the styles of real exporters, plus an ORT runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class ModelBuilder:
    """Build a single-input, single-output float ONNX model node by node.

    ``batch`` is the input's first dimension: a name (symbolic) or a fixed size. With ``ir_version``
    below 4 initializers are also listed as graph inputs, as old exporters did.
    """

    def __init__(self, input_shape: tuple[int, ...], opset: int = 13, batch: str | int = "N",
                 input_name: str = "x", seed: int = 0, ir_version: int | None = None) -> None:
        self.opset = opset
        self.input_name = input_name
        self.input_shape = tuple(input_shape)
        self.batch = batch
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        minimum = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
        self.ir_version = max(minimum, 4) if ir_version is None else ir_version
        self._count = 0

    def _name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, array: Any, name: str | None = None, dtype: Any = np.float32) -> str:
        """Add an initializer; returns its name."""
        name = name or self._name("w")
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def random(self, *shape: int, scale: float = 0.5) -> str:
        return self.const(self.rng.normal(0, scale, shape))

    def op(self, op_type: str, inputs: list[str], name: str | None = None, outputs: int = 1,
           **attrs: Any) -> str:
        """Append a node; returns its first output's name."""
        name = name or self._name(op_type)
        names = [f"{name}_out{i}" if i else f"{name}_out" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=name, **attrs))
        return names[0]

    def constant_node(self, array: Any, dtype: Any = np.float32) -> str:
        tensor = numpy_helper.from_array(np.asarray(array, dtype=dtype))
        return self.op("Constant", [], value=tensor)

    def build(self, output: str, output_shape: tuple[int, ...] | None = None,
              extra_inputs: list[onnx.ValueInfoProto] | None = None) -> onnx.ModelProto:
        inputs = [helper.make_tensor_value_info(self.input_name, TensorProto.FLOAT,
                                                [self.batch, *self.input_shape])]
        inputs += extra_inputs or []
        if self.ir_version < 4:
            inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                       for t in self.initializers]
        shape = None if output_shape is None else [self.batch, *output_shape]
        outputs = [helper.make_tensor_value_info(output, TensorProto.FLOAT, shape)]
        graph = helper.make_graph(self.nodes, "test", inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="snncc-tests")
        model.ir_version = self.ir_version
        if shape is None:  # let onnx infer the output's shape, as exporters write it
            probe = onnx.ModelProto()
            probe.CopyFrom(model)
            del probe.graph.output[:]
            inferred = onnx.shape_inference.infer_shapes(probe)
            known = {v.name: v for v in inferred.graph.value_info}
            if output not in known or not known[output].type.tensor_type.HasField("shape"):
                raise ValueError(f"onnx cannot infer the shape of {output!r}: give output_shape")
            model.graph.output[0].CopyFrom(known[output])
        onnx.checker.check_model(model)
        return model

    def save(self, path: Path, output: str, **kwargs: Any) -> Path:
        onnx.save(self.build(output, **kwargs), str(path))
        return path


def run_ort(model: onnx.ModelProto | Path, inputs: np.ndarray, batch: int | None = None) -> np.ndarray:
    """onnxruntime's output for float32 ``inputs`` (in chunks of ``batch`` for fixed-batch models)."""
    import onnxruntime as ort

    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    # The reference is the ONNX semantics: ORT's graph rewrites are off because its PadFusion
    # folds Pad(0) into MaxPool's -inf padding (microsoft/onnxruntime PR 18136), which differs.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    inputs = np.asarray(inputs, dtype=np.float32)
    step = batch or len(inputs)
    parts = [session.run(None, {name: inputs[i:i + step]})[0] for i in range(0, len(inputs), step)]
    return np.concatenate(parts).astype(np.float64)
