"""Hostile and careless inputs for the snncc CLI (issue 21): file builders and a CLI runner.

Every builder writes one crafted file (or folder) and returns its path. The runner starts the CLI
in a subprocess, optionally under an address-space cap (``RLIMIT_AS``), and records its exit
status, output and peak resident memory (``ru_maxrss`` of that one child, from ``os.wait4``).
``scripts/hostile_inputs.py`` runs the catalogue in :mod:`hostile_cases` through this runner.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_ONNX = REPO / "examples" / "digits_mlp.onnx"
#: Address-space cap of the bomb cases (the issue's 2 GB).
MEMORY_CAP = 2 << 30
#: Written into every secret file outside a model's folder; must never appear in any output.
MARKER = "SNNCC-SECRET-7f3a9c"
DIGITS_SHAPE = (1, 8, 8)


# ------------------------------------------------------------------------------------- runner


@dataclass
class Run:
    """One finished CLI run."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float
    timed_out: bool = False

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def clean_refusal(self) -> bool:
        """Exit 2 with exactly one line on stderr, no traceback, no "internal error"."""
        return (self.returncode == 2 and len(self.error_lines) == 1
                and "Traceback" not in self.stderr and "internal error" not in self.stderr)

    def describe(self) -> str:
        return (f"snncc {' '.join(self.args)} -> rc {self.returncode}"
                f"{' (timed out)' if self.timed_out else ''} in {self.seconds:.1f} s, "
                f"peak {self.peak_rss_mb:.0f} MB\nstdout: {self.stdout[-2000:]}\n"
                f"stderr: {self.stderr[-2000:]}")


def run_cli(*args: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None,
            cap: int | None = None, timeout: float = 240, env: dict[str, str] | None = None,
            umask: int | None = None, signal_after: tuple[float, int] | None = None,
            signal_when: Path | None = None, python_code: str | None = None) -> Run:
    """Run ``python -m snncc ARGS`` (or ``python -c python_code ARGS``) and wait for it.

    ``cap``: RLIMIT_AS in bytes. ``signal_after=(seconds, signum)`` sends a signal after that
    delay, or (with ``signal_when``) once that path's folder holds an entry named like it
    (a glob pattern in its name). A run past ``timeout`` is killed and marked ``timed_out``.
    """
    texts = [str(a) for a in args]
    command = [sys.executable, *(["-c", python_code] if python_code else ["-m", "snncc"]),
               *texts]
    environment = {**os.environ, "PYTHONPATH": str(REPO), "CI": "1", "COLUMNS": "200",
                   **(env or {})}
    environment.pop("SNNCC_DEBUG", None)

    def limit() -> None:
        if cap is not None:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        if umask is not None:
            os.umask(umask)

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   cwd=cwd or REPO, env=environment, preexec_fn=limit)
        timed_out = signalled = False
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            elapsed = time.perf_counter() - started
            if signal_after and not signalled:
                due = elapsed >= signal_after[0]
                if signal_when is not None:
                    due = due and any(signal_when.parent.glob(signal_when.name))
                if due:
                    process.send_signal(signal_after[1])
                    signalled = True
            if elapsed > timeout:
                process.kill()
                timed_out = True
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.02)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return Run(texts, process.returncode, out.read().decode(errors="replace"),
                   err.read().decode(errors="replace"), seconds, usage.ru_maxrss / 1024,
                   timed_out)


def assert_refused(run: Run, *fragments: str, secret: str = MARKER) -> None:
    """Exit 2, one line on stderr naming ``fragments``, no traceback, no secret in any output."""
    assert run.clean_refusal(), run.describe()
    line = run.error_lines[0]
    for fragment in fragments:
        assert fragment in line, run.describe()
    assert secret not in run.stdout + run.stderr, run.describe()


# ----------------------------------------------------------------------------- plain models


def secret_file(folder: Path, content: bytes | None = None) -> Path:
    """A file outside every model folder: the marker text, or ``content``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "secret.txt"
    path.write_bytes(content if content is not None else (MARKER + "\n").encode() * 64)
    return path


def digits_network(hidden: int = 8, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights and thresholds of a small single-spike network for the 8x8 digits."""
    rng = np.random.default_rng(seed)
    weights = [rng.choice(np.array([-1, 1], np.int8), (hidden, 64)),
               rng.choice(np.array([-1, 1], np.int8), (10, hidden))]
    return weights, [np.array([6], np.int64), np.array([2], np.int64)]


def bstdg_model(path: Path, hidden: int = 8, t_max: int = 16) -> Path:
    """A valid BSTDG network for the digits dataset (through snncc's own writer)."""
    from snncc.frontend.bstdg import BSTDGModel, write_bstdg

    weights, thresholds = digits_network(hidden)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_bstdg(BSTDGModel(weights, thresholds, t_max, DIGITS_SHAPE, 1 / 255,
                                  {"dataset": "digits"}), path)


def raw_bstdg(path: Path, *, t_max: int = 16, weight0=None, extra=None) -> Path:
    """A BSTDG file written with h5py directly; ``weight0(group)`` creates layer 0's weight.

    ``extra(handle)`` may add or rewire anything before the file is closed.
    """
    weights, thresholds = digits_network()
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.attrs.update({"format": "snncc-bstdg", "version": 1, "coding": "latency",
                             "t_max": t_max, "input_shape": np.array(DIGITS_SHAPE, np.int64),
                             "input_scale": 1 / 255})
        layers = handle.create_group("layers")
        for index, (weight, threshold) in enumerate(zip(weights, thresholds, strict=True)):
            group = layers.create_group(str(index))
            if index == 0 and weight0 is not None:
                weight0(group)
            else:
                group.create_dataset("weight", data=weight)
            group.create_dataset("threshold", data=threshold)
        handle.create_group("metadata").attrs["dataset"] = "digits"
        if extra is not None:
            extra(handle)
    return path


def bstdg_external_storage(path: Path, secret: Path) -> Path:
    """Layer 0's weights live in ``secret`` (HDF5 external storage), 64 x 8 bytes of it."""
    return raw_bstdg(path, weight0=lambda group: group.create_dataset(
        "weight", shape=(8, 64), dtype=np.int8, external=[(str(secret), 0, 8 * 64)]))


def bstdg_external_link(path: Path, outside: Path) -> Path:
    """``/layers/0`` is an external link into a file outside the model's folder."""
    weights, _ = digits_network(seed=1)
    outside.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(outside, "w") as handle:
        group = handle.create_group("layers/0")
        group.create_dataset("weight", data=weights[0])
        group.create_dataset("threshold", data=np.array([6], np.int64))

    def relink(handle: h5py.File) -> None:
        del handle["layers/0"]
        handle["layers/0"] = h5py.ExternalLink(str(outside), "/layers/0")

    return raw_bstdg(path, extra=relink)


def bstdg_soft_link(path: Path) -> Path:
    """``/layers/1/weight`` is a soft link to a dataset elsewhere in the same file."""
    weights, _ = digits_network(seed=2)

    def relink(handle: h5py.File) -> None:
        handle.create_dataset("spare/weight", data=weights[1])
        del handle["layers/1/weight"]
        handle["layers/1/weight"] = h5py.SoftLink("/spare/weight")

    return raw_bstdg(path, extra=relink)


def bstdg_virtual(path: Path, outside: Path) -> Path:
    """Layer 0's weights are a virtual dataset mapping a dataset of a file outside the folder."""
    weights, _ = digits_network(seed=3)
    outside.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(outside, "w") as handle:
        handle.create_dataset("w", data=weights[0])

    def virtual(group: h5py.Group) -> None:
        layout = h5py.VirtualLayout(shape=(8, 64), dtype=np.int8)
        layout[:] = h5py.VirtualSource(str(outside), "w", shape=(8, 64))
        group.create_virtual_dataset("weight", layout)

    return raw_bstdg(path, weight0=virtual)


def bstdg_declared_bomb(path: Path, side: int = 200_000) -> Path:
    """Layer 0 declares a ``side x side`` int8 weight (40 GB) that no byte of the file holds."""
    return raw_bstdg(path, weight0=lambda group: group.create_dataset(
        "weight", shape=(side, side), dtype=np.int8, chunks=(1000, 1000)))


def bstdg_with_weight(path: Path, value: int) -> Path:
    """A BSTDG file whose first weight is ``value`` (not a valid ±1/0 weight)."""
    weights, _ = digits_network()
    weight = weights[0].copy()
    weight[0, 0] = value
    return raw_bstdg(path, weight0=lambda group: group.create_dataset("weight", data=weight))


# ------------------------------------------------------------------------------------ NIR


def nir_model(path: Path, edit=None) -> Path:
    """A small NIR graph (Input 4 -> Affine -> LIF -> Output, dt in its metadata) written by the
    nir package; ``edit(handle)`` may rewire the HDF5 file afterwards."""
    import nir

    rng = np.random.default_rng(0)
    nodes = {"in": nir.Input(input_type=np.array([4])),
             "fc": nir.Affine(weight=rng.normal(size=(3, 4)), bias=np.zeros(3)),
             "lif": nir.LIF(tau=np.full(3, 1e-3), r=np.ones(3), v_leak=np.zeros(3),
                            v_threshold=np.ones(3), v_reset=np.zeros(3)),
             "out": nir.Output(output_type=np.array([3]))}
    graph = nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")],
                         metadata={"dt": 1e-3}, type_check=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(path, graph)
    if edit is not None:
        with h5py.File(path, "r+") as handle:
            edit(handle)
    return path


def nir_declared_bomb(path: Path, side: int = 200_000) -> Path:
    """The Affine weight declares ``side x side`` float64 values (320 GB) that no byte holds."""
    def bomb(handle: h5py.File) -> None:
        del handle["node/nodes/fc/weight"]
        handle.create_dataset("node/nodes/fc/weight", shape=(side, side), dtype="<f8",
                              chunks=(1000, 1000))

    return nir_model(path, bomb)


def nir_external_link(path: Path, outside: Path) -> Path:
    """The Affine node is an external link into a file outside the model's folder."""
    nir_model(outside)

    def relink(handle: h5py.File) -> None:
        del handle["node/nodes/fc"]
        handle["node/nodes/fc"] = h5py.ExternalLink(str(outside), "/node/nodes/fc")

    return nir_model(path, relink)


# ----------------------------------------------------------------------------------- ONNX


def onnx_mlp(path: Path, *, extra_nodes=(), extra_inits=(), weight_patch=None,
             reverse: bool = False, ir_version: int = 8, sidecar: bool = True,
             hidden: int = 16) -> Path:
    """A float MLP for the digits: image (N,1,8,8) -> Flatten -> Gemm -> Relu -> Gemm -> logits.

    ``extra_nodes``/``extra_inits`` are added (e.g. an unused constant branch); ``weight_patch``
    edits the first layer's weight array; ``reverse`` lists the nodes backwards (as keras2onnx
    wrote some graphs: not in topological order).
    """
    rng = np.random.default_rng(0)
    weight1 = rng.normal(0, 0.3, (hidden, 64)).astype(np.float32)
    if weight_patch is not None:
        weight_patch(weight1)
    inits = [numpy_helper.from_array(weight1, "fc0.weight"),
             numpy_helper.from_array(np.zeros(hidden, np.float32), "fc0.bias"),
             numpy_helper.from_array(rng.normal(0, 0.3, (10, hidden)).astype(np.float32),
                                     "fc1.weight"),
             numpy_helper.from_array(np.zeros(10, np.float32), "fc1.bias"), *extra_inits]
    nodes = [helper.make_node("Flatten", ["image"], ["flat"], name="flatten", axis=1),
             helper.make_node("Gemm", ["flat", "fc0.weight", "fc0.bias"], ["h"], name="fc0",
                              transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu0"),
             helper.make_node("Gemm", ["r", "fc1.weight", "fc1.bias"], ["logits"], name="fc1",
                              transB=1), *extra_nodes]
    if reverse:
        nodes = nodes[::-1]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = ir_version
    return _save_onnx(model, path, sidecar)


def _save_onnx(model: onnx.ModelProto, path: Path, sidecar: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    if sidecar:
        path.with_suffix(".json").write_text(json.dumps(
            {"dataset": "digits", "preprocess": {"scale": 1 / 255}}))
    return path


def onnx_constant_of_shape_bomb(path: Path, side: int = 60_000) -> Path:
    """An unused ``ConstantOfShape([side, side])`` branch: 26 bytes that fold to 14 GB."""
    shape = numpy_helper.from_array(np.array([side, side], np.int64), "bomb_shape")
    node = helper.make_node("ConstantOfShape", ["bomb_shape"], ["bomb"], name="bomb")
    return onnx_mlp(path, extra_nodes=[node], extra_inits=[shape])


def onnx_expand_bomb(path: Path, side: int = 60_000) -> Path:
    """An unused ``Expand(1.0, [side, side])`` branch."""
    inits = [numpy_helper.from_array(np.array([1.0], np.float32), "one"),
             numpy_helper.from_array(np.array([side, side], np.int64), "bomb_shape")]
    node = helper.make_node("Expand", ["one", "bomb_shape"], ["bomb"], name="bomb")
    return onnx_mlp(path, extra_nodes=[node], extra_inits=inits)


def onnx_maxpool_pads(path: Path) -> Path:
    """A CNN whose MaxPool pads (1) reach the kernel size (1x1 kernel): onnxruntime refuses it."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32), "cw"),
             numpy_helper.from_array(np.zeros(4, np.float32), "cb"),
             numpy_helper.from_array(rng.normal(0, 0.3, (10, 4 * 6 * 6)).astype(np.float32),
                                     "fw"),
             numpy_helper.from_array(np.zeros(10, np.float32), "fb")]
    nodes = [helper.make_node("Conv", ["image", "cw", "cb"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2],
                              pads=[2, 2, 2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], transB=1)]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return _save_onnx(model, path, True)


# ------------------------------------------------------------------------------ IR (.snn.npz)


def ir_model(path: Path, **changes) -> Path:
    """A small integer single-spike IR graph for the digits (a BSTDG network), saved as .snn.npz.

    ``changes``: ``weight`` replaces dense1's weight; ``input_padding`` inserts a padded 1x1 conv.
    """
    from snncc import ir
    from snncc.frontend.bstdg import BSTDGModel, to_graph

    weights, thresholds = digits_network()
    graph = to_graph(BSTDGModel(weights, thresholds, 16, DIGITS_SHAPE, 1 / 255,
                                {"dataset": "digits"}))
    if "weight" in changes:
        graph.nodes["dense1"].weight = np.asarray(changes["weight"])
    if "input_padding" in changes:
        pad = int(changes["input_padding"])
        side = 8 + 2 * pad
        fresh = ir.Graph(dict(graph.metadata))
        fresh.chain(("input", graph.nodes["input"]),
                    ("pad", ir.Conv2d(weight=np.ones((1, 1, 1, 1), np.int64), padding=pad)),
                    ("pool", ir.SumPool2d(kernel=side, stride=side)),
                    ("flatten", ir.Flatten()),
                    ("dense1", ir.Dense(weight=np.ones((10, 1), np.int64))),
                    ("readout", ir.Readout(mode="first_spike", threshold=np.ones(1, np.int64))))
        graph = fresh
    path.parent.mkdir(parents=True, exist_ok=True)
    graph.save(path)
    return path


def _zip_entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def ir_lying_npy(path: Path, rows: int = 60_000) -> Path:
    """dense1's weight member has a .npy header promising ``rows x rows`` float64 and 64 bytes."""
    ir_model(path)
    entries = _zip_entries(path)
    member = next(name for name in entries if name.endswith("_weight.npy"))
    header = {"descr": "<f8", "fortran_order": False, "shape": (rows, rows)}
    text = repr(header).encode()
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    entries[member] = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + bytes(64)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def _deflate_zeros(prefix: bytes, total: int, chunk: int = 1 << 24) -> tuple[bytes, int, int]:
    """A raw deflate stream of ``prefix`` then ``total`` zero bytes, built from one repeated block.

    After a full flush the compressor forgets its history, so one compressed block of ``chunk``
    zeros can be repeated: a 3 GB stream costs ~3 MB and no 3 GB buffer. Returns (stream, size,
    crc32).
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush(zlib.Z_FINISH)
    count = total // chunk
    crc = zlib.crc32(prefix)
    zeros = bytes(chunk)
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    return head + block * count + tail, len(prefix) + count * chunk, crc


def write_zip(path: Path, members: dict[str, bytes | tuple[bytes, int, int]]) -> Path:
    """A zip file by hand: ``bytes`` members stored, ``(deflate, size, crc)`` members deflated."""
    local, central = bytearray(), bytearray()
    for name, data in members.items():
        encoded = name.encode()
        if isinstance(data, tuple):
            payload, size, crc = data
            method = 8
        else:
            payload, size, crc, method = data, len(data), zlib.crc32(data), 0
        offset = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc,
                             len(payload), size, len(encoded), 0) + encoded + payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc,
                               len(payload), size, len(encoded), 0, 0, 0, 0, 0,
                               offset) + encoded
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                      len(local), 0)
    path.write_bytes(bytes(local) + bytes(central) + end)
    return path


def ir_zip_bomb(path: Path, size: int = 3 << 30) -> Path:
    """dense1's weight member inflates to ``size`` bytes (an honest .npy of zeros) from ~3 MB."""
    ir_model(path)
    entries = _zip_entries(path)
    member = next(name for name in entries if name.endswith("_weight.npy"))
    rows = size // 8 // 1024
    header = {"descr": "<f8", "fortran_order": False, "shape": (rows, 1024)}
    text = repr(header).encode()
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    prefix = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text
    members: dict[str, bytes | tuple[bytes, int, int]] = dict(entries)
    members[member] = _deflate_zeros(prefix, rows * 1024 * 8)
    return write_zip(path, members)


def ir_graph_with(path: Path, build) -> Path:
    """An IR file of the graph ``build()`` returns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    build().save(path)
    return path


# ------------------------------------------------------------------------------------ datasets


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def mnist_dir(root: Path, images: bytes | None = None, labels: bytes | None = None) -> Path:
    """A data folder ``root/mnist`` with a 10-sample test split (``images``/``labels`` replace)."""
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    default_images = idx_bytes(rng.integers(0, 256, (10, 28, 28)))
    default_labels = idx_bytes(rng.integers(0, 10, (10,)))
    (folder / "t10k-images-idx3-ubyte").write_bytes(images or default_images)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(labels or default_labels)
    return root


def idx_gzip_bomb(size: int = 3 << 30, chunk: int = 1 << 26) -> bytes:
    """A gzip file whose IDX header declares 10 images but which inflates to ``size`` bytes.

    Concatenated gzip members: one small member with the header, then one 64 MB member of
    zeros repeated (gzip readers decode every member), ~3 MB in all.
    """
    header = bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in (10, 28, 28))
    block = gzip.compress(bytes(chunk), compresslevel=9)
    return gzip.compress(header) + block * (size // chunk)


def idx_overflow_header() -> bytes:
    """An IDX header of four dimensions of 65536: their product, 2**64, wraps to 0 in int64."""
    return bytes([0, 0, 0x08, 4]) + (65536).to_bytes(4, "big") * 4


# ------------------------------------------------------------------------------- chip profiles


def chip_profile(path: Path, **changes) -> Path:
    """A chip profile YAML; ``changes`` replace top-level keys (text values are written raw)."""
    values = {"name": "hostile", "kind": "neuromorphic", "cores_per_chip": "4",
              "core": "\n  neurons: 1024", **{k: str(v) for k, v in changes.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key}: {value}\n" for key, value in values.items()))
    return path


def yaml_alias_bomb(path: Path, levels: int = 9) -> Path:
    """A billion-laughs profile (~400 bytes): ``notes`` nests ``levels`` lists of 9 aliases.

    ``notes`` must be a string, so the profile is wrong anyway; expanding it (e.g. to show the
    bad value) builds 9**levels strings.
    """
    items = ['&l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    items += [f"&l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]"
              for level in range(1, levels)]
    lines = ["name: hostile", "kind: neuromorphic", "cores_per_chip: 4",
             "core: {neurons: 1024}", "notes: [" + ", ".join(items) + "]"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


# -------------------------------------------------------------------------------- special files


def fifo(path: Path) -> Path:
    """A named pipe nobody writes to: opening it for reading blocks forever."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


# ---------------------------------------------------------------------------- BSTDG checkpoints


def digits_train_config(hidden: int = 8, epochs: int = 1):
    """The config ``snncc train bstdg --dataset digits --hidden H --epochs E`` builds."""
    from snncc.train.config import recipe_config

    return recipe_config("digits", hidden=(hidden,), t_max=None, epochs=epochs, seed=0, shift=0,
                         target_sparsity=0.0, pruning="magnitude", balanced_fan_in=True,
                         learning_rate=None, threshold_learning_rate=None, margin=None,
                         potential_margin=None, hidden_threshold=None, output_threshold=None,
                         init_positive=None)


def wrong_shape_checkpoint(output: Path, hidden: int = 8) -> Path:
    """``<output>.ckpt.npz`` for that run whose first layer takes 3 inputs instead of 64."""
    from snncc.train.bstdg import BSTDGNetwork, checkpoint_path, save_checkpoint

    config = digits_train_config(hidden)
    rng = np.random.default_rng(0)
    weights = [rng.uniform(-1, 1, (hidden, 3)), rng.uniform(-1, 1, (10, hidden))]
    network = BSTDGNetwork(weights, np.array([4.0, 4.0]), config.t_max, DIGITS_SHAPE)
    path = checkpoint_path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, network, [np.full(hidden, 0.5)], config, [])
    return path


def malformed_checkpoint(output: Path, state: object) -> Path:
    """``<output>.ckpt.npz`` whose JSON state is ``state`` (not the mapping snncc writes)."""
    from snncc.train.bstdg import checkpoint_path

    path = checkpoint_path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez(handle, state=np.frombuffer(json.dumps(state).encode(), np.uint8),
                 thresholds=np.zeros(2))
    return path


#: Python code running the CLI with a graph ``save`` that sleeps after writing (into the staging
#: folder, during ``compile``), so a signal test can interrupt while the staging folder exists.
SLOW_SAVE_CODE = (
    "import sys, time\n"
    "from snncc import ir\n"
    "save = ir.Graph.save\n"
    "def slow(self, path):\n"
    "    written = save(self, path)\n"
    "    time.sleep(60)\n"
    "    return written\n"
    "ir.Graph.save = slow\n"
    "from snncc.cli import main\n"
    "sys.argv = ['snncc'] + sys.argv[1:]\n"
    "main()\n"
)


