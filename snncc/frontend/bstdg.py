"""BSTDG network files (``.bstdg.h5``): binarized single-spike networks, read into the graph IR.

The format (version 1, HDF5; documented in ``docs/bstdg-format.md``)::

    /                       attrs: format="snncc-bstdg", version=1, coding="latency", t_max,
                                   input_shape (int64 array), input_scale (float64)
    /layers/<i>/weight      int8 (out, in), values in {-1, 0, +1} (0 = pruned synapse)
    /layers/<i>/threshold   int64 (1,) or (out,), >= 1: spike when the potential >= threshold
    /metadata               attrs: dataset, epochs, seed, train_accuracy, test_accuracy, producer,
                                   hyperparameters (JSON text), ... (free-form, informational)

Layers ``0 .. n-2`` are hidden single-spike IF layers, layer ``n-1`` is the first-spike readout.
:func:`load_bstdg` builds ``Input(latency, t_max, scale) -> Flatten -> (Dense -> IF(fire_once,
reset zero))* -> Dense -> Readout(first_spike)`` with integer weights and thresholds and no bias.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from snncc import ir
from snncc.errors import SnnccError
from snncc.safety import check_size, check_timesteps, open_hdf5, read_dataset
from snncc.util import atomic_path

FORMAT = "snncc-bstdg"
VERSION = 1
SUFFIX = ".bstdg.h5"


@dataclass
class BSTDGModel:
    """The contents of a BSTDG file: integer weights, integer thresholds, coding and metadata."""

    weights: list[np.ndarray]  # int8 (out, in) in {-1, 0, +1}
    thresholds: list[np.ndarray]  # int64 (1,) or (out,), >= 1
    t_max: int
    input_shape: tuple[int, ...]
    input_scale: float = 1.0 / 255.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        self.weights = [np.asarray(w) for w in self.weights]
        self.thresholds = [np.asarray(t).reshape(-1) for t in self.thresholds]
        self.validate()

    def validate(self, where: str = "BSTDG network") -> None:
        """Raise one-line :class:`SnnccError` for any inconsistency (names layer and limit)."""
        if not self.weights:
            raise SnnccError(f"{where}: no layers")
        if len(self.thresholds) != len(self.weights):
            raise SnnccError(f"{where}: {len(self.weights)} weight layers but "
                             f"{len(self.thresholds)} thresholds")
        if int(self.t_max) < 2:
            raise SnnccError(f"{where}: t_max must be >= 2, got {self.t_max}")
        check_timesteps(self.t_max, f"{where}: t_max")
        if not self.input_shape or any(s <= 0 for s in self.input_shape):
            raise SnnccError(f"{where}: bad input shape {self.input_shape}")
        check_size(self.input_shape, f"{where}: input shape")
        if not np.isfinite(self.input_scale) or self.input_scale <= 0:
            raise SnnccError(f"{where}: input scale must be a positive number, "
                             f"got {self.input_scale}")
        fan_in = math.prod(self.input_shape)
        for index, (weight, threshold) in enumerate(zip(self.weights, self.thresholds, strict=True)):
            layer = f"{where}: layer {index}"
            if weight.ndim != 2:
                raise SnnccError(f"{layer}: weight must be 2-D (out, in), got shape {weight.shape}")
            if weight.dtype.kind == "f" and not np.all(np.isfinite(weight)):
                raise SnnccError(f"{layer}: weight contains NaN or infinite values")
            if weight.dtype.kind not in "iuf" or not np.all(np.isin(weight, (-1, 0, 1))):
                # where, never what: the values are the file's bytes
                if weight.dtype.kind in "iuf":
                    bad = np.argwhere(~np.isin(weight, (-1, 0, 1)))
                    shown = (f" ({len(bad):,} other values, the first at row {bad[0][0]}, "
                             f"column {bad[0][1]})")
                else:
                    shown = f" (dtype {weight.dtype})"
                raise SnnccError(f"{layer}: weights must be -1, 0 or +1{shown}")
            if weight.shape[1] != fan_in:
                raise SnnccError(f"{layer}: weight has {weight.shape[1]} inputs but the previous "
                                 f"layer has {fan_in} outputs")
            if threshold.size not in (1, weight.shape[0]):
                raise SnnccError(f"{layer}: {threshold.size} thresholds for {weight.shape[0]} "
                                 "neurons")
            if threshold.dtype.kind == "f" and not np.all(np.isfinite(threshold)):
                raise SnnccError(f"{layer}: threshold contains NaN or infinite values")
            if threshold.dtype.kind not in "iuf" or not np.all(threshold == np.rint(threshold)):
                raise SnnccError(f"{layer}: thresholds must be integers")
            if np.any(threshold < 1):
                raise SnnccError(f"{layer}: thresholds must be >= 1, found {threshold.min()}")
            fan_in = weight.shape[0]
        self.weights = [w.astype(np.int8) for w in self.weights]
        self.thresholds = [t.astype(np.int64) for t in self.thresholds]

    @property
    def classes(self) -> int:
        return int(self.weights[-1].shape[0])


def write_bstdg(model: BSTDGModel, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``path`` atomically (nothing is left behind on failure)."""
    model.validate()
    path = Path(path)
    with atomic_path(path) as temporary:
        with h5py.File(temporary, "w") as handle:
            handle.attrs["format"] = FORMAT
            handle.attrs["version"] = VERSION
            handle.attrs["coding"] = "latency"
            handle.attrs["t_max"] = int(model.t_max)
            handle.attrs["input_shape"] = np.asarray(model.input_shape, np.int64)
            handle.attrs["input_scale"] = float(model.input_scale)
            layers = handle.create_group("layers")
            for index, (weight, threshold) in enumerate(zip(model.weights, model.thresholds, strict=True)):
                group = layers.create_group(str(index))
                group.create_dataset("weight", data=weight.astype(np.int8), compression="gzip")
                group.create_dataset("threshold", data=threshold.astype(np.int64))
            metadata = handle.create_group("metadata")
            for key, value in model.metadata.items():
                metadata.attrs[key] = _metadata_value(key, value)
    return path


def _metadata_value(key: str, value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, (str, bool, int, float, np.integer, np.floating)):
        return value
    raise SnnccError(f"metadata {key!r}: cannot store a {type(value).__name__}")


def _read_metadata_value(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and (value[:1] in ("[", "{") or value == "null"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_bstdg(path: str | os.PathLike[str]) -> BSTDGModel:
    """Read and check a BSTDG file; any problem raises one-line :class:`SnnccError`.

    The file is opened with :func:`snncc.safety.open_hdf5`: it may hold no links and no
    external or virtual datasets, and every declared shape is checked before it is read.
    """
    path = Path(path)
    try:
        with open_hdf5(path, "BSTDG file") as handle:
            attrs = handle.attrs
            found = attrs.get("format")
            found = found.decode() if isinstance(found, bytes) else found
            if found != FORMAT:
                raise SnnccError(f"{path}: not a BSTDG file (format {found!r}, expected "
                                 f"{FORMAT!r})")
            version = int(attrs.get("version", -1))
            if version != VERSION:
                raise SnnccError(f"{path}: BSTDG format version {version} is not supported "
                                 f"(this snncc reads version {VERSION})")
            coding = attrs.get("coding")
            coding = coding.decode() if isinstance(coding, bytes) else coding
            if coding != "latency":
                raise SnnccError(f"{path}: unsupported input coding {coding!r} (expected latency)")
            for key in ("t_max", "input_shape", "input_scale"):
                if key not in attrs:
                    raise SnnccError(f"{path}: missing attribute {key!r}")
            if "layers" not in handle:
                raise SnnccError(f"{path}: missing group 'layers'")
            layers = handle["layers"]
            weights, thresholds = [], []
            for index in range(len(layers)):
                if str(index) not in layers:
                    raise SnnccError(f"{path}: layers are not numbered 0..{len(layers) - 1}")
                group = layers[str(index)]
                for key in ("weight", "threshold"):
                    if key not in group:
                        raise SnnccError(f"{path}: layer {index} has no {key!r} dataset")
                weights.append(read_dataset(group["weight"]))
                thresholds.append(read_dataset(group["threshold"]))
            metadata = {}
            if "metadata" in handle:
                metadata = {k: _read_metadata_value(v) for k, v in handle["metadata"].attrs.items()}
            t_max = int(attrs["t_max"])
            input_shape = tuple(int(s) for s in np.asarray(attrs["input_shape"]).reshape(-1))
            input_scale = float(attrs["input_scale"])
    except SnnccError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, OverflowError) as error:
        raise SnnccError(f"{path}: corrupt or truncated BSTDG file "
                         f"({str(error).splitlines()[0] if str(error) else type(error).__name__})"
                         ) from None
    model = BSTDGModel.__new__(BSTDGModel)
    model.weights = [np.asarray(w) for w in weights]
    model.thresholds = [np.asarray(t).reshape(-1) for t in thresholds]
    model.t_max = t_max
    model.input_shape = input_shape
    model.input_scale = input_scale
    model.metadata = metadata
    model.validate(where=str(path))
    return model


def to_graph(model: BSTDGModel, source: str | None = None) -> ir.Graph:
    """The IR graph of a BSTDG network (see the module docstring)."""
    metadata = {"producer": "bstdg", "format": FORMAT, "t_max": int(model.t_max)}
    if source is not None:
        metadata["source"] = source
    for key in ("dataset", "test_accuracy"):
        if key in model.metadata:
            metadata[key] = model.metadata[key]
    graph = ir.Graph(metadata)
    graph.chain(
        ("input", ir.Input(shape=model.input_shape, coding="latency", scale=model.input_scale,
                           t_max=int(model.t_max))),
        ("flatten", ir.Flatten()),
    )
    last = len(model.weights) - 1
    for index, (weight, threshold) in enumerate(zip(model.weights, model.thresholds, strict=True)):
        dense = ir.Dense(weight=weight.astype(np.int8), bias=None)
        if index < last:
            graph.chain((f"dense{index + 1}", dense),
                        (f"hidden{index + 1}", ir.IF(threshold=threshold.astype(np.int64),
                                                     v_init=np.zeros(1, np.int64), reset="zero",
                                                     fire_once=True)))
        else:
            graph.chain((f"dense{index + 1}", dense),
                        ("readout", ir.Readout(mode="first_spike",
                                               threshold=threshold.astype(np.int64))))
    graph.validate(integer=True)
    return graph


def load_bstdg(path: str | os.PathLike[str]) -> ir.Graph:
    """Read a ``.bstdg.h5`` file into an integer IR graph."""
    return to_graph(read_bstdg(path), source=str(path))
