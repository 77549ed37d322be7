"""The hostile-input catalogue that ``scripts/hostile_inputs.py`` sweeps through the CLI.

Each :class:`Case` builds its files in a fresh folder and returns the CLI arguments. ``expect``
says what handling cleanly means: ``"refused"`` (exit 2, one line on stderr, no traceback) or
``"ok"`` (exit 0 or 1, no traceback: input snncc must accept). Bomb cases run under the 2 GiB
address-space cap and report their peak memory. The pytest groups beside this file hold one
regression test per defect of issue 21; this catalogue adds variants of the same attacks.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import onnx
from hostile import (
    EXAMPLE_ONNX,
    bstdg_declared_bomb,
    bstdg_external_link,
    bstdg_external_storage,
    bstdg_model,
    bstdg_soft_link,
    bstdg_virtual,
    bstdg_with_weight,
    chip_profile,
    fifo,
    idx_bytes,
    idx_gzip_bomb,
    idx_overflow_header,
    ir_lying_npy,
    ir_model,
    ir_zip_bomb,
    malformed_checkpoint,
    mnist_dir,
    nir_declared_bomb,
    nir_external_link,
    nir_model,
    onnx_constant_of_shape_bomb,
    onnx_expand_bomb,
    onnx_maxpool_pads,
    onnx_mlp,
    raw_bstdg,
    secret_file,
    wrong_shape_checkpoint,
    yaml_alias_bomb,
)
from onnx import helper, numpy_helper


@dataclass
class Case:
    """One hostile input: ``build(folder)`` writes its files and returns the CLI arguments."""

    name: str
    defect: str
    build: Callable[[Path], list]
    expect: str = "refused"
    bomb: bool = False
    timeout: float = 180


CASES: list[Case] = []


def case(name: str, defect: str, expect: str = "refused", bomb: bool = False,
         timeout: float = 180) -> Callable:
    def register(build: Callable[[Path], list]) -> Callable[[Path], list]:
        CASES.append(Case(name, defect, build, expect, bomb, timeout))
        return build

    return register


def _copy_example(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE_ONNX, folder / "model.onnx")
    shutil.copy(EXAMPLE_ONNX.with_suffix(".json"), folder / "model.json")
    return folder / "model.onnx"


# ------------------------------------------------------------------ 1: HDF5 reads outside itself

for _command in ("inspect", "compile", "validate"):
    def _storage(folder: Path, command: str = _command) -> list:
        model = bstdg_external_storage(folder / "m" / "net.bstdg.h5",
                                       secret_file(folder / "outside", bytes([0, 1, 255]) * 200))
        extra = {"compile": ["-o", folder / "m" / "out"], "validate": ["-n", "5"]}.get(command, [])
        return [command, model, *extra]

    case(f"hdf5 external storage ({_command})", "1")(_storage)

    def _link(folder: Path, command: str = _command) -> list:
        model = bstdg_external_link(folder / "m" / "net.bstdg.h5", folder / "outside" / "s.h5")
        extra = {"compile": ["-o", folder / "m" / "out"], "validate": ["-n", "5"]}.get(command, [])
        return [command, model, *extra]

    case(f"hdf5 external link ({_command})", "1")(_link)

case("hdf5 external storage of text (echo)", "1")(lambda f: [
    "inspect", bstdg_external_storage(f / "m" / "n.bstdg.h5", secret_file(f / "outside"))])
case("hdf5 soft link", "1")(lambda f: ["inspect", bstdg_soft_link(f / "n.bstdg.h5")])
case("hdf5 virtual dataset", "1")(lambda f: [
    "inspect", bstdg_virtual(f / "m" / "n.bstdg.h5", f / "outside" / "w.h5")])
case("hdf5 weight 114 (not echoed)", "1")(lambda f: [
    "inspect", bstdg_with_weight(f / "n.bstdg.h5", 114)])
case("hdf5 external link to /etc/passwd", "1")(lambda f: ["inspect", raw_bstdg(
    f / "n.bstdg.h5",
    extra=lambda h: h.__setitem__("evil", h5py.ExternalLink("/etc/passwd", "/x")))])


case("nir external link", "1")(lambda f: [
    "inspect", nir_external_link(f / "m" / "n.nir", f / "outside" / "o.nir")])


@case("nir group hard-linked into itself", "1")
def _nir_cycle(folder: Path) -> list:
    def loop(handle: h5py.File) -> None:
        handle["node/nodes/fc/again"] = handle["node/nodes/fc"]

    return ["inspect", nir_model(folder / "n.nir", loop)]


case("nir plain file (accepted)", "1", expect="ok")(lambda f: ["inspect", nir_model(f / "n.nir")])


@case("hdf5 hard-link cycle (accepted)", "1", expect="ok")
def _cycle(folder: Path) -> list:
    def loop(handle: h5py.File) -> None:
        handle["layers/0/again"] = handle["layers/0"]

    return ["inspect", raw_bstdg(folder / "n.bstdg.h5", extra=loop)]


case("hdf5 plain file (accepted)", "1", expect="ok")(lambda f: [
    "inspect", bstdg_model(f / "n.bstdg.h5")])


# ------------------------------------------------------------------- 2: output directories


@case("compile -o foreign directory", "2")
def _foreign(folder: Path) -> list:
    (folder / "other").mkdir(parents=True)
    (folder / "other" / "notes.txt").write_text("mine")
    return ["compile", _copy_example(folder / "m"), "-T", "4", "-o", folder / "other"]


case("compile -o the model's folder", "2")(lambda f: [
    "compile", _copy_example(f / "m"), "-T", "4", "-o", f / "m"])
case("compile -o the model's folder --force", "2")(lambda f: [
    "compile", _copy_example(f / "m"), "-T", "4", "-o", f / "m", "--force"])
case("compile -o the model's parent", "2")(lambda f: [
    "compile", _copy_example(f / "m"), "-T", "4", "-o", f])
for _target in ("", ".", "..", "/"):
    case(f"compile -o {_target!r}", "2")(lambda f, t=_target: [
        "compile", _copy_example(f / "m"), "-T", "4", "-o", t, "--force"])


@case("compile -o a symbolic link", "2")
def _symlink(folder: Path) -> list:
    (folder / "real").mkdir(parents=True)
    (folder / "link").symlink_to(folder / "real")
    return ["compile", _copy_example(folder / "m"), "-T", "4", "-o", folder / "link"]


@case("compile -o an existing file", "2")
def _file(folder: Path) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "out").write_text("x")
    return ["compile", _copy_example(folder / "m"), "-T", "4", "-o", folder / "out"]


@case("compile -o an earlier output (accepted)", "2", expect="ok")
def _again(folder: Path) -> list:
    model = ir_model(folder / "m" / "n.snn.npz")
    out = folder / "out"
    out.mkdir()
    (out / ".snncc-output").write_text(json.dumps({"kind": "compile"}))
    (out / "stale.txt").write_text("old")
    return ["compile", model, "-o", out]


@case("compile -o foreign directory --force (accepted)", "2", expect="ok")
def _forced(folder: Path) -> list:
    (folder / "other").mkdir(parents=True)
    (folder / "other" / "x.txt").write_text("x")
    return ["compile", ir_model(folder / "m" / "n.snn.npz"), "-o", folder / "other", "--force"]


# --------------------------------------------------------------------------- 3: resource bombs

case("onnx ConstantOfShape bomb", "3", bomb=True)(lambda f: [
    "inspect", onnx_constant_of_shape_bomb(f / "b.onnx")])
case("onnx Expand bomb", "3", bomb=True)(lambda f: ["inspect", onnx_expand_bomb(f / "b.onnx")])


def _constant_branch(folder: Path, nodes: list, inits: list) -> Path:
    return onnx_mlp(folder / "b.onnx", extra_nodes=nodes, extra_inits=inits)


case("onnx Tile bomb", "3", bomb=True)(lambda f: ["inspect", _constant_branch(
    f, [helper.make_node("Tile", ["t_in", "t_rep"], ["bomb"], name="bomb")],
    [numpy_helper.from_array(np.ones((2, 2), np.float32), "t_in"),
     numpy_helper.from_array(np.array([40_000, 40_000], np.int64), "t_rep")])])
case("onnx MatMul outer-product bomb", "3", bomb=True)(lambda f: ["inspect", _constant_branch(
    f, [helper.make_node("MatMul", ["col", "row"], ["bomb"], name="bomb")],
    [numpy_helper.from_array(np.ones((60_000, 1), np.float32), "col"),
     numpy_helper.from_array(np.ones((1, 60_000), np.float32), "row")])])
case("onnx Range bomb", "3", bomb=True)(lambda f: ["inspect", _constant_branch(
    f, [helper.make_node("Range", ["r0", "r1", "r2"], ["bomb"], name="bomb")],
    [numpy_helper.from_array(np.array(0, np.int64), "r0"),
     numpy_helper.from_array(np.array(10**10, np.int64), "r1"),
     numpy_helper.from_array(np.array(1, np.int64), "r2")])])
case("onnx Concat amplification bomb", "3", bomb=True)(lambda f: ["inspect", _constant_branch(
    f, [helper.make_node("Concat", ["c_in"] * 2000, ["bomb"], name="bomb", axis=0)],
    [numpy_helper.from_array(np.ones(2_000_000, np.float32), "c_in")])])
case("nir declared shape bomb", "3", bomb=True)(lambda f: [
    "inspect", nir_declared_bomb(f / "b.nir")])
case("bstdg declared shape bomb", "3", bomb=True)(lambda f: [
    "inspect", bstdg_declared_bomb(f / "b.bstdg.h5")])


@case("bstdg chunk bomb (small shape, huge chunk)", "3", bomb=True)
def _chunk(folder: Path) -> list:
    def weight(group: h5py.Group) -> None:
        group.create_dataset("weight", shape=(8, 64), maxshape=(None, None), dtype=np.int8,
                             chunks=(60_000, 60_000), compression="gzip")

    return ["inspect", raw_bstdg(folder / "b.bstdg.h5", weight0=weight)]


case("bstdg t_max 1e12", "3", bomb=True)(lambda f: [
    "validate", raw_bstdg(f / "b.bstdg.h5", t_max=10**12), "-n", "5"])
case("bstdg input shape 1e12", "3", bomb=True)(lambda f: ["validate", raw_bstdg(
    f / "b.bstdg.h5", extra=lambda h: h.attrs.__setitem__(
        "input_shape", np.array([10**6, 10**6], np.int64))), "-n", "5"])
case("npz lying .npy header", "3", bomb=True)(lambda f: ["inspect", ir_lying_npy(f / "b.snn.npz")])
case("npz zip bomb (3 GB member)", "3", bomb=True)(lambda f: [
    "inspect", ir_zip_bomb(f / "b.snn.npz")])
case("IR padded layer of 1e10 neurons", "3", bomb=True)(lambda f: [
    "validate", ir_model(f / "b.snn.npz", input_padding=50_000), "-n", "5"])


def _gzip_data(folder: Path, which: str) -> Path:
    data = mnist_dir(folder / "data")
    stem = {"images": "t10k-images-idx3-ubyte", "labels": "t10k-labels-idx1-ubyte"}[which]
    (data / "mnist" / stem).unlink()
    (data / "mnist" / f"{stem}.gz").write_bytes(idx_gzip_bomb())
    return data


for _which in ("images", "labels"):
    case(f"idx gzip bomb ({_which})", "3", bomb=True)(lambda f, w=_which: [
        "validate", EXAMPLE_ONNX, "--dataset", "mnist", "--data-dir", _gzip_data(f, w)])
case("idx declared 4e9 images", "3", bomb=True)(lambda f: [
    "validate", EXAMPLE_ONNX, "--dataset", "mnist", "--data-dir", mnist_dir(
        f, images=bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big")
                                               for d in (5_000_000, 28, 28)))])
case("yaml alias bomb", "3", bomb=True, timeout=90)(lambda f: [
    "partition", EXAMPLE_ONNX, "--chip", yaml_alias_bomb(f / "c.yaml")])
case("chip cores_per_chip 1e12", "3", bomb=True, timeout=90)(lambda f: [
    "partition", EXAMPLE_ONNX, "--chip", chip_profile(f / "c.yaml", cores_per_chip=10**12)])
case("chip chips 1e12", "3", bomb=True, timeout=90)(lambda f: [
    "partition", EXAMPLE_ONNX, "--chip", chip_profile(f / "c.yaml", chips=10**12)])
for _command, _extra in (("validate", ["-n", "5"]), ("compile", ["-o", "OUT"]),
                         ("stages", ["--limit", "5"]), ("partition", ["--chip", "loihi",
                                                                       "--dataset", "digits"])):
    case(f"{_command} -T 1e9", "3", bomb=True)(lambda f, c=_command, e=_extra: [
        c, EXAMPLE_ONNX, "-T", "1000000000", *[f / "out" if a == "OUT" else a for a in e]])
for _hidden in ("100000000", "100000,100000"):
    case(f"train --hidden {_hidden}", "3", bomb=True)(lambda f, h=_hidden: [
        "train", "bstdg", "--dataset", "digits", "--hidden", h, "-o", f / "n.bstdg.h5"])
case("train --shift 1e6", "3", bomb=True)(lambda f: [
    "train", "bstdg", "--dataset", "digits", "--shift", "1000000", "-o", f / "n.bstdg.h5"])
case("train --tmax 1e9", "3", bomb=True)(lambda f: [
    "train", "bstdg", "--dataset", "digits", "--tmax", "1000000000", "-o", f / "n.bstdg.h5"])
for _special in ("/dev/zero", "/dev/urandom"):
    case(f"model {_special}", "3", bomb=True, timeout=60)(lambda f, s=_special: ["inspect", s])
    case(f"config {_special}", "3", bomb=True, timeout=60)(lambda f, s=_special: [
        "validate", "--config", s])
    case(f"chip profile {_special}", "3", bomb=True, timeout=60)(lambda f, s=_special: [
        "partition", EXAMPLE_ONNX, "--chip", s])
case("model FIFO", "3", timeout=60)(lambda f: ["inspect", fifo(f / "m.onnx")])
case("model FIFO (.snn.npz)", "3", timeout=60)(lambda f: ["inspect", fifo(f / "m.snn.npz")])
case("config FIFO", "3", timeout=60)(lambda f: ["validate", "--config", fifo(f / "c.toml")])
case("chip profile FIFO", "3", timeout=60)(lambda f: [
    "partition", EXAMPLE_ONNX, "--chip", fifo(f / "c.yaml")])
case("baseline FIFO", "3", timeout=60)(lambda f: [
    "validate", EXAMPLE_ONNX, "-n", "5", "--baseline", fifo(f / "b.json")])


@case("ONNX external weight data FIFO", "3", timeout=60)
def _external_fifo(folder: Path) -> list:
    model = onnx_mlp(folder / "m.onnx")
    proto = onnx.load(str(model))
    onnx.save_model(proto, str(model), save_as_external_data=True, location="w.bin",
                    size_threshold=0)
    (folder / "w.bin").unlink()
    os.mkfifo(folder / "w.bin")
    return ["inspect", model]


@case("IDX FIFO", "3", timeout=60)
def _idx_fifo(folder: Path) -> list:
    data = mnist_dir(folder / "data")
    (data / "mnist" / "t10k-images-idx3-ubyte").unlink()
    os.mkfifo(data / "mnist" / "t10k-images-idx3-ubyte")
    return ["validate", EXAMPLE_ONNX, "--dataset", "mnist", "--data-dir", data]


@case("sidecar FIFO (ignored: not a file)", "3", expect="ok", timeout=60)
def _sidecar_fifo(folder: Path) -> list:
    model = onnx_mlp(folder / "m.onnx", sidecar=False)
    os.mkfifo(folder / "m.json")
    return ["inspect", model]


# ----------------------------------------------------------------------------- 4: checkpoints

_TRAIN = ["train", "bstdg", "--dataset", "digits", "--hidden", "8", "--epochs", "1", "--limit",
          "60", "--resume"]
case("checkpoint of the wrong shapes", "4")(lambda f: [
    *_TRAIN, "-o", _ckpt(f, wrong_shape_checkpoint)])


def _ckpt(folder: Path, writer: Callable, *args) -> Path:
    output = folder / "n.bstdg.h5"
    writer(output, *args)
    return output


def _edited_checkpoint(output: Path, edit: Callable[[dict], None]) -> Path:
    from hostile import digits_train_config

    from snncc.train.bstdg import (
        BSTDGNetwork,
        checkpoint_path,
        initial_network,
        save_checkpoint,
    )

    config = digits_train_config()
    network: BSTDGNetwork = initial_network(config, (1, 8, 8), 10)
    path = checkpoint_path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, network, [np.full(8, 0.5)], config, [])
    with np.load(path) as archive:
        arrays = dict(archive)
    edit(arrays)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


case("checkpoint deployed weight 5", "4")(lambda f: [*_TRAIN, "-o", _ckpt(
    f, _edited_checkpoint, lambda a: a["deployed0"].__setitem__((0, 0), 5))])
case("checkpoint NaN weights", "4")(lambda f: [*_TRAIN, "-o", _ckpt(
    f, _edited_checkpoint, lambda a: a["weight1"].__setitem__((0, 0), np.nan))])
case("checkpoint without thresholds", "4")(lambda f: [*_TRAIN, "-o", _ckpt(
    f, _edited_checkpoint, lambda a: a.pop("thresholds"))])
case("checkpoint firing rates of the wrong size", "4")(lambda f: [*_TRAIN, "-o", _ckpt(
    f, _edited_checkpoint, lambda a: a.__setitem__("firing_rate0", np.ones(3)))])
for _state in ([1, 2], "text", None, {"format": "snncc-bstdg-checkpoint", "version": 2}):
    case(f"checkpoint state {json.dumps(_state)[:30]}", "10")(lambda f, s=_state: [
        *_TRAIN, "-o", _ckpt(f, malformed_checkpoint, s)])


# ----------------------------------------------------------------------------- 5: non-finite

for _value in ("nan", "inf", "-inf"):
    case(f"onnx initializer {_value}", "5")(lambda f, v=_value: ["compile", onnx_mlp(
        f / "m.onnx", weight_patch=lambda w: w.__setitem__((1, 2), float(v))), "-T", "4",
        "-o", f / "out"])
case("IR weight inf", "5")(lambda f: ["compile", ir_model(
    f / "m.snn.npz", weight=np.where(np.eye(8, 64) > 0, np.inf, 1.0)), "-o", f / "out"])
for _flag in (["--scale", "nan"], ["--mean", "inf"], ["--std", "nan"], ["--mean", "1,nan"]):
    case(f"compile {' '.join(_flag)}", "5")(lambda f, flag=_flag: [
        "compile", ir_model(f / "m.snn.npz"), *flag, "-o", f / "out"])


@case("onnx Clip max = inf initializer (accepted)", "5", expect="ok")
def _clip_inf(folder: Path) -> list:
    model = onnx_mlp(folder / "m.onnx", extra_inits=[
        numpy_helper.from_array(np.array(0, np.float32), "lo"),
        numpy_helper.from_array(np.array(np.inf, np.float32), "hi")])
    proto = onnx.load(str(model))
    for node in proto.graph.node:
        if node.op_type == "Relu":
            node.op_type = "Clip"
            node.input.extend(["lo", "hi"])
    model.write_bytes(proto.SerializeToString())
    return ["inspect", model]


# ----------------------------------------------------------------------------- 6: hdl-check


def _bundle(folder: Path) -> Path:
    from snncc.backends.fpga import build_bundle
    from snncc.loading import load_model

    graph = load_model(bstdg_model(folder / "m" / "n.bstdg.h5"))
    graph.metadata.update({"timesteps": 16, "target": "fpga"})
    files = build_bundle(graph, timesteps=16, options={})
    bundle = folder / "bundle"
    for relative, data in files.items():
        (bundle / relative).parent.mkdir(parents=True, exist_ok=True)
        (bundle / relative).write_bytes(data)
    graph.save(bundle / "network.snn.npz")
    return bundle


def _resign(bundle: Path, relative: str, data: bytes | None = None) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    if data is not None:
        (bundle / relative).write_bytes(data)
    content = (bundle / relative).read_bytes()
    manifest["files"][relative] = {"sha256": hashlib.sha256(content).hexdigest(),
                                   "bytes": len(content)}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def _hdl(bundle: Path) -> list:
    return ["hdl-check", bundle, "--dataset", "digits", "-n", "3"]


@case("hdl-check bundle Verilog writing a file", "6")
def _verilog(folder: Path) -> list:
    bundle = _bundle(folder)
    engine = (bundle / "hdl" / "if_layer.v").read_bytes()
    _resign(bundle, "hdl/if_layer.v", engine + b'\nmodule p; initial $fopen("PWNED","w"); '
                                               b"endmodule\n")
    return _hdl(bundle)


@case("hdl-check edited weights", "6")
def _weights(folder: Path) -> list:
    bundle = _bundle(folder)
    memory = next((bundle / "mem").glob("*weights.mem"))
    _resign(bundle, f"mem/{memory.name}", memory.read_bytes().replace(b"f", b"e", 1))
    return _hdl(bundle)


for _where in ("/etc/passwd", "../outside/secret.txt"):
    @case(f"hdl-check manifest path {_where}", "6")
    def _path(folder: Path, where: str = _where) -> list:
        bundle = _bundle(folder)
        secret = secret_file(folder / "outside")
        target = Path(where) if where.startswith("/") else secret
        manifest = json.loads((bundle / "manifest.json").read_text())
        data = target.read_bytes()
        manifest["files"][where] = {"sha256": hashlib.sha256(data).hexdigest()}
        (bundle / "manifest.json").write_text(json.dumps(manifest))
        return _hdl(bundle)


@case("hdl-check symbolic link out of the bundle", "6")
def _link_out(folder: Path) -> list:
    bundle = _bundle(folder)
    secret = secret_file(folder / "outside")
    (bundle / "mem" / "leak.mem").symlink_to(secret)
    _resign(bundle, "mem/leak.mem")
    return _hdl(bundle)


@case("hdl-check manifest fpga_part a file path", "6")
def _part(folder: Path) -> list:
    bundle = _bundle(folder)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["compile_options"]["fpga_part"] = "/etc/passwd"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return _hdl(bundle)


for _content in ([1, 2], {"format": "snncc-fpga-bundle", "format_version": 1, "files": [1]},
                 {"format": "snncc-fpga-bundle", "format_version": 1, "files": {"a": 1}},
                 {"format": "snncc-fpga-bundle", "format_version": 1, "files": {},
                  "graph_sha256": 5}):
    @case(f"hdl-check manifest {json.dumps(_content)[-40:]}", "10")
    def _manifest(folder: Path, content: object = _content) -> list:
        bundle = _bundle(folder)
        (bundle / "manifest.json").write_text(json.dumps(content))
        return _hdl(bundle)


case("hdl-check plain bundle (accepted)", "6", expect="ok")(lambda f: _hdl(_bundle(f)))


# --------------------------------------------------------------------------- 7: pass options

for _option in ("convert.percentile=abc", "convert.calibration_samples=abc",
                "convert.calibration_samples=1.5", "convert.v_init_fraction=[1]",
                "convert.bias_correction_rounds=x", "convert.per_channel=2",
                "convert.threshold_method=7", "convert.coding=null", "fold.weight_bits=abc",
                "fold.input_max=abc", "fold.per_channel=yes", "quantize.bits=abc",
                "quantize.bits=8.5", "quantize.weight_percentile=abc", "quantize.target=7",
                "prune.sparsity=half", "prune.sparsity={\"x\":\"y\"}", "prune.layers=7",
                "prune.rounds=abc", "prune.structured=1", "prune.reconstruct=maybe",
                "binarize.per_channel=yes", "binarize.layers={}", "nosuch.x=1",
                "convert.nosuch=1", "convert.percentile=NaN", "convert.percentile=Infinity"):
    case(f"--option {_option}", "7")(lambda f, o=_option: [
        "compile", EXAMPLE_ONNX, "--passes", "convert,binarize,fold,quantize,prune",
        "--option", o, "-T", "4", "-o", f / "out"])


def _toml(folder: Path, body: str) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "snncc.toml").write_text(f'model = "{EXAMPLE_ONNX}"\nlimit = 5\ntimesteps = 4\n'
                                       + body)
    return ["validate", "--config", folder / "snncc.toml"]


case("toml [options.nosuch]", "7")(lambda f: _toml(f, "[options.nosuch]\nx = 1\n"))
case("toml options.convert.percentile string", "7")(lambda f: _toml(
    f, '[options.convert]\npercentile = "abc"\n'))
case("toml options.prune.sparsity table of strings", "7")(lambda f: _toml(
    f, '[options.prune.sparsity]\nfc0 = "x"\n'))
case("--option convert.percentile=99.5 (accepted)", "7", expect="ok")(lambda f: [
    "compile", EXAMPLE_ONNX, "--option", "convert.percentile=99.5", "--option",
    "convert.threshold_method=percentile", "-T", "4", "-o", f / "out"])


# ---------------------------------------------------------------------- 8: output paths first


@case("compile -o existing_file/sub", "8")
def _under_file(folder: Path) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "file").write_text("x")
    return ["compile", EXAMPLE_ONNX, "-o", folder / "file" / "sub"]


for _flag in ("--json", "--junit", "--markdown", "--plots"):
    case(f"validate {_flag} /proc/x", "8")(lambda f, flag=_flag: [
        "validate", EXAMPLE_ONNX, "-n", "5", "-T", "4", flag, "/proc/x"])
case("validate --json into a directory", "8")(lambda f: [
    "validate", EXAMPLE_ONNX, "-n", "5", "-T", "4", "--json", _mkdir(f)])
case("stages --json /proc/x", "8")(lambda f: [
    "stages", EXAMPLE_ONNX, "--limit", "5", "--json", "/proc/x"])
case("partition --json /proc/x", "8")(lambda f: [
    "partition", EXAMPLE_ONNX, "--chip", "loihi", "--json", "/proc/x"])
case("train -o a directory", "8")(lambda f: [
    "train", "bstdg", "--dataset", "digits", "--hidden", "8", "--epochs", "1", "-o", _mkdir(f)])
case("train -o under a missing folder", "8")(lambda f: [
    "train", "bstdg", "--dataset", "digits", "--hidden", "8", "--epochs", "1", "-o",
    f / "missing" / "n.bstdg.h5"])


def _mkdir(folder: Path) -> Path:
    (folder / "dir").mkdir(parents=True, exist_ok=True)
    return folder / "dir"


# -------------------------------------------------------- 9: models onnxruntime cannot run

case("validate ONNX IR version 14 (accepted)", "9", expect="ok")(lambda f: [
    "validate", onnx_mlp(f / "m.onnx", ir_version=14), "-n", "10", "-T", "4"])
case("stages ONNX IR version 14 (accepted)", "9", expect="ok")(lambda f: [
    "stages", onnx_mlp(f / "m.onnx", ir_version=14), "--limit", "10", "-T", "4",
    "--stages", "convert"])
case("validate MaxPool pads >= kernel", "9")(lambda f: [
    "validate", onnx_maxpool_pads(f / "m.onnx"), "-n", "10", "-T", "4"])


# -------------------------------------------------------------------- 10: malformed values

case("idx header overflowing int64", "10")(lambda f: [
    "validate", EXAMPLE_ONNX, "--dataset", "mnist", "--data-dir",
    mnist_dir(f, images=idx_overflow_header())])
case("idx labels of another count", "10")(lambda f: [
    "validate", EXAMPLE_ONNX, "--dataset", "mnist", "--data-dir",
    mnist_dir(f, labels=idx_bytes(np.zeros(7)))])
case("idx trailing data", "10")(lambda f: [
    "validate", EXAMPLE_ONNX, "--dataset", "mnist", "--data-dir",
    mnist_dir(f, labels=idx_bytes(np.zeros(10)) + b"extra")])


def _bytes_file(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


case("chip profile not UTF-8", "10")(lambda f: [
    "partition", EXAMPLE_ONNX, "--chip", _bytes_file(f, "c.yaml", b"name: \xff\n")])
case("config not UTF-8", "10")(lambda f: [
    "validate", "--config", _bytes_file(f, "c.toml", b'model = "\xff"\n')])
case("baseline not UTF-8", "10")(lambda f: [
    "validate", EXAMPLE_ONNX, "-n", "5", "--baseline", _bytes_file(f, "b.json", b"\xff{}")])
case("sidecar not UTF-8", "10")(lambda f: ["inspect", _bytes_file(
    f, "m.json", b"\xff") and onnx_mlp(f / "m.onnx", sidecar=False)])
case("sidecar nested 100000 deep", "10")(lambda f: ["inspect", _bytes_file(
    f, "m.json", b"[" * 100_000) and onnx_mlp(f / "m.onnx", sidecar=False)])
_BASE = {"schema": "snncc.validate/1", "snn_accuracy": 0.5, "spikes_per_sample": 10.0,
         "synops_per_sample": 100.0, "dataset": "digits", "samples": 5, "timesteps": 4}
for _change in ({"snn_accuracy": "abc"}, {"spikes_per_sample": [1]}, {"accuracy_curve": "x"},
                {"samples": None}, {"stages": [{"name": 1}]}, {"dataset": 5}):
    case(f"baseline {json.dumps(_change)}", "10")(lambda f, c=_change: [
        "validate", EXAMPLE_ONNX, "-n", "5", "-T", "4", "--baseline",
        _bytes_file(f, "b.json", json.dumps({**_BASE, **c}).encode())])
case("stages --limit 0", "10")(lambda f: [
    "stages", EXAMPLE_ONNX, "--limit", "0", "--stages", "convert"])
case("validate --limit 0", "10")(lambda f: ["validate", EXAMPLE_ONNX, "--limit", "0"])
case("train --hidden 0", "10")(lambda f: [
    "train", "bstdg", "--dataset", "digits", "--hidden", "0", "-o", f / "n.bstdg.h5"])
case("ONNX layer of 0 units", "10")(lambda f: [
    "compile", onnx_mlp(f / "m.onnx", hidden=0), "-T", "4", "-o", f / "out"])
case("IR layer of 0 units", "10")(lambda f: [
    "validate", ir_model(f / "m.snn.npz", weight=np.zeros((0, 64), np.int64)), "-n", "5"])


# ------------------------------------------------------------------- 11: node order and cycles

case("ONNX nodes listed backwards (accepted)", "11", expect="ok")(lambda f: [
    "validate", onnx_mlp(f / "m.onnx", reverse=True), "-n", "10", "-T", "4"])


@case("ONNX nodes in a cycle", "11")
def _node_cycle(folder: Path) -> list:
    model = onnx_mlp(folder / "m.onnx")
    proto = onnx.load(str(model))
    proto.graph.node[1].input[0] = "r"
    model.write_bytes(proto.SerializeToString())
    return ["inspect", model]


# ------------------------------------------------------------ truncated and foreign files


def _truncated(folder: Path, source: Path, fraction: float, suffix: str) -> Path:
    data = source.read_bytes()
    return _bytes_file(folder, f"cut{suffix}", data[: int(len(data) * fraction)])


for _fraction in (0.0, 0.1, 0.5, 0.9, 0.99):
    case(f"ONNX cut at {_fraction:.0%}", "-")(lambda f, x=_fraction: [
        "inspect", _truncated(f, EXAMPLE_ONNX, x, ".onnx")])
    case(f"BSTDG cut at {_fraction:.0%}", "-")(lambda f, x=_fraction: [
        "inspect", _truncated(f, bstdg_model(f / "src" / "n.bstdg.h5"), x, ".bstdg.h5")])
    case(f"IR cut at {_fraction:.0%}", "-")(lambda f, x=_fraction: [
        "inspect", _truncated(f, ir_model(f / "src" / "n.snn.npz"), x, ".snn.npz")])
for _suffix in (".onnx", ".bstdg.h5", ".snn.npz", ""):
    case(f"random bytes as {_suffix or 'a model without suffix'}", "-")(lambda f, s=_suffix: [
        "inspect", _bytes_file(f, f"m{s}", np.random.default_rng(0).bytes(4096))])
case("a pickle inside a .npz", "-")(lambda f: ["inspect", _pickle_npz(f)])


def _pickle_npz(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "p.snn.npz", manifest=np.array([{"x": 1}], dtype=object))
    return folder / "p.snn.npz"
