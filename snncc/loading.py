"""Loading what the commands work on: model files, datasets laid out for a model, calibration data.

Shared by :mod:`snncc.pipeline` (compile, validate) and :mod:`snncc.stages` (the accuracy ladder).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from snncc import ir
from snncc.datasets import DATASETS, Dataset, arrange, load_dataset
from snncc.errors import SnnccError
from snncc.safety import check_graph, check_timesteps, regular_file

CALIBRATION_SEED = 0
CALIBRATION_COUNT = 2000


def model_kind(path: Path) -> str:
    """``onnx``, ``ir`` (a saved snncc graph), ``nir`` (NIR HDF5) or ``bstdg`` (HDF5), from the
    name and magic bytes."""
    name = path.name.lower()
    if name.endswith(".onnx"):
        return "onnx"
    if name.endswith(".nir"):
        return "nir"
    if name.endswith((".snn.npz", ".npz")):
        return "ir"
    if name.endswith((".h5", ".hdf5")):
        return "bstdg"
    regular_file(path, "model")  # the magic bytes of a FIFO would never come
    try:
        head = path.open("rb").read(8)
    except FileNotFoundError:
        raise SnnccError(f"{path}: no such file") from None
    except OSError as error:
        raise SnnccError(f"{path}: cannot read ({error.strerror})") from None
    if head.startswith(b"PK"):
        return "ir"
    if head.startswith(b"\x89HDF"):
        return "nir" if _is_nir_hdf5(path) else "bstdg"
    return "onnx"


def _is_nir_hdf5(path: Path) -> bool:
    """An HDF5 file with NIR's top-level ``version`` and ``node`` entries."""
    try:
        import h5py

        with h5py.File(path, "r") as handle:  # links are looked at, never followed
            return all(handle.get(name, getlink=True) is not None for name in ("version", "node"))
    except Exception:  # noqa: BLE001 - unreadable: the BSTDG loader reports it
        return False


def load_model(path: str | Path, preprocess: dict[str, Any] | None = None,
               layout: str | None = None, nir: dict[str, Any] | None = None) -> ir.Graph:
    """Load an ONNX checkpoint, a NIR file, a BSTDG network file or a saved IR graph as a graph.

    ``preprocess`` overrides the input preprocessing; ``layout`` (NCHW/NHWC) says how dataset
    images are laid out for the model's input; ``nir`` holds the NIR import choices
    (``convention``, ``dt``, ``coding``; see :func:`snncc.frontend.nir_import.load_nir`).
    """
    path = Path(path)
    if nir and any(v is not None for v in nir.values()) and model_kind(path) != "nir":
        raise SnnccError(f"{path}: --nir-* options apply to NIR files only")
    graph = _load_file(path, preprocess, nir)
    if layout is not None:
        if layout.upper() not in ("NCHW", "NHWC"):
            raise SnnccError(f"unknown layout {layout!r}; choose NCHW or NHWC")
        graph.metadata["layout"] = layout.upper()
    return graph


def _load_file(path: Path, preprocess: dict[str, Any] | None,
               nir: dict[str, Any] | None = None) -> ir.Graph:
    regular_file(path, "model")  # before reading a byte: FIFOs block, /dev/zero never ends
    kind = model_kind(path)
    if kind == "onnx":
        from snncc.frontend.onnx_import import load_onnx

        graph = load_onnx(path, preprocess=preprocess)
        check_graph(graph, str(path))
        return graph
    if kind == "nir":
        from snncc.frontend.nir_import import load_nir

        graph = load_nir(path, preprocess=preprocess, **(nir or {}))
        check_graph(graph, str(path))
        return graph
    if kind == "bstdg":
        from snncc.frontend.bstdg import load_bstdg

        graph = load_bstdg(path)
    else:
        graph = ir.Graph.load(path)
    if preprocess:
        node = graph.input
        for key in ("scale", "mean", "std"):
            if key in preprocess and preprocess[key] is not None:
                setattr(node, key, preprocess[key])
        node.__post_init__()
    check_graph(graph, str(path))
    graph.validate()
    return graph


def is_spiking(graph: ir.Graph) -> bool:
    return any(isinstance(node, ir.NEURONS + (ir.Readout,)) for node in graph.nodes.values())


def dataset_name(graph: ir.Graph, requested: str | None) -> str | None:
    name = requested or graph.metadata.get("dataset")
    if name is not None and name not in DATASETS:
        raise SnnccError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return name


def model_inputs(graph: ir.Graph, data: Dataset) -> np.ndarray:
    """Dataset images laid out as the model's input."""
    return arrange(data.images, graph.input.shape, graph.metadata.get("layout", "NCHW"))


def calibration_samples(graph: ir.Graph, name: str, data_dir: str | None,
                        count: int) -> np.ndarray:
    """``count`` training samples (seeded random choice) for calibration; never test data."""
    train = load_dataset(name, "train", data_dir)
    rng = np.random.default_rng(CALIBRATION_SEED)
    chosen = np.sort(rng.choice(len(train), size=min(count, len(train)), replace=False))
    return model_inputs(graph, Dataset(name, "train", train.images[chosen], train.labels[chosen]))


class OnnxRuntimeUnavailable(SnnccError):
    """onnxruntime cannot load or run a model that snncc imports (e.g. an IR version newer than
    it knows); ``reason`` is its message without error codes and source locations."""

    def __init__(self, model_path: Path, reason: str) -> None:
        super().__init__(f"{model_path}: onnxruntime cannot run this model ({reason})")
        self.reason = reason


def onnxruntime_logits(model_path: Path, graph: ir.Graph, raw_inputs: np.ndarray,
                       batch_size: int = 512) -> np.ndarray:
    """The original ONNX model's outputs from onnxruntime on the same preprocessed inputs.

    Raises :class:`OnnxRuntimeUnavailable` when onnxruntime refuses the model.
    """
    try:
        return _onnxruntime_logits(model_path, graph, raw_inputs, batch_size)
    except SnnccError:
        raise
    except Exception as error:  # noqa: BLE001 - onnxruntime's own exception classes
        from snncc.frontend.onnx_import import _ort_reason

        raise OnnxRuntimeUnavailable(model_path, _ort_reason(error)) from None


def ann_reference_logits(model_path: Path, graph: ir.Graph,
                         raw_inputs: np.ndarray) -> tuple[np.ndarray, str]:
    """The ANN reference outputs and what computed them: onnxruntime on the original model, or
    (when onnxruntime refuses it) snncc's own ANN mode on the imported graph, saying why."""
    try:
        return onnxruntime_logits(model_path, graph, raw_inputs), "onnxruntime"
    except OnnxRuntimeUnavailable as error:
        from snncc.engines import run_ann

        return (run_ann(graph, raw_inputs),
                f"snncc ANN mode; onnxruntime cannot run this model: {error.reason}")


def _onnxruntime_logits(model_path: Path, graph: ir.Graph, raw_inputs: np.ndarray,
                        batch_size: int) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # its refusals come back as exceptions, not stderr lines
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    model_input = session.get_inputs()[0]
    fixed_batch = model_input.shape[0] if isinstance(model_input.shape[0], int) else None
    step = fixed_batch or batch_size
    outputs = []
    for start in range(0, len(raw_inputs), step):
        chunk = graph.input.preprocess(raw_inputs[start:start + step]).astype(np.float32)
        count = len(chunk)
        if fixed_batch and count < fixed_batch:
            chunk = np.concatenate([chunk, np.zeros((fixed_batch - count,) + chunk.shape[1:],
                                                    np.float32)])
        outputs.append(session.run(None, {model_input.name: chunk})[0][:count])
    return np.concatenate(outputs)


def resolve_timesteps(graph: ir.Graph, timesteps: int | None) -> int:
    """Explicit T, else a latency input's ``t_max``, else the graph's recorded T, else 32.

    An explicit T on a latency-coded network re-encodes its input with ``t_max = T`` (the whole
    spike-time range compressed into T steps), which is how such a network is deployed faster.
    """
    if timesteps is not None:
        check_timesteps(timesteps)
        if graph.input.coding == "latency":
            graph.input.t_max = timesteps
        return timesteps
    if graph.input.coding == "latency" and graph.input.t_max:
        return check_timesteps(graph.input.t_max, "the model's t_max")
    recorded = graph.metadata.get("timesteps", 32)
    if not isinstance(recorded, int) or isinstance(recorded, bool):
        raise SnnccError(f"the model records timesteps {recorded!r}, not an integer")
    return check_timesteps(recorded, "the model's recorded timesteps")


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB pieces (never the whole file in memory)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for piece in iter(lambda: handle.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()
