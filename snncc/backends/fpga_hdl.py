"""Run an FPGA bundle's Verilog under Icarus Verilog and read back what the hardware computed.

:func:`simulate_hdl` encodes the samples with the bundle's input coding (the shared encoders of
:mod:`snncc.coding`, exactly as the reference simulator does), writes them as per-step event lists,
compiles ``hdl/tb_network.v`` + ``hdl/snn_network.v`` + ``hdl/if_layer.v`` with ``iverilog``
into a temporary directory and runs ``vvp`` from the bundle root. The result holds every IF
layer's spike raster, the readout's prediction after every step, its final potentials and the
first-spike decision step — the quantities :func:`snncc.engines.simulate` reports in integer
mode, so tests compare them element for element.
"""

from __future__ import annotations

import dataclasses
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snncc import ir, semantics
from snncc.backends.fpga import (
    CONFIG_FILE,
    ENGINE_FILE,
    NETWORK_FILE,
    TESTBENCH_FILE,
    build_bundle,
    bundle_file,
    read_manifest,
)
from snncc.engines import SimResult
from snncc.errors import SnnccError

#: Seconds one vvp run may take before it is stopped.
DEFAULT_TIMEOUT_S = 1800


@dataclass
class HdlResult:
    """What the HDL simulation observed (``N`` samples, ``T`` steps)."""

    timesteps: int
    predictions: np.ndarray  # (T, N) readout decision after each step
    readout_state: np.ndarray  # (N, classes) final readout potentials
    decision_time: np.ndarray | None  # (N,) first-spike decision step (T if none); None: potential
    rasters: dict[str, np.ndarray] = field(default_factory=dict)  # IF layer -> (T, N, *shape)
    cycles: np.ndarray | None = None  # (N,) clock cycles per sample
    seconds: float = 0.0  # wall time of the vvp run
    cpu_seconds: float = 0.0  # CPU time of the vvp run (robust on a shared machine)

    @property
    def seconds_per_sample(self) -> float:
        return self.seconds / max(1, self.predictions.shape[1])

    @property
    def cpu_seconds_per_sample(self) -> float:
        return self.cpu_seconds / max(1, self.predictions.shape[1])


def iverilog_missing() -> str | None:
    """Why the HDL simulation cannot run here (``None`` when iverilog and vvp are installed)."""
    missing = [tool for tool in ("iverilog", "vvp") if shutil.which(tool) is None]
    if missing:
        return (f"Icarus Verilog is not installed ({' and '.join(missing)} not on PATH; "
                f"install the Debian package 'iverilog')")
    return None


def _input_node(manifest: dict) -> ir.Input:
    spec = manifest["input"]
    return ir.Input(shape=tuple(spec["shape"]), coding=spec["coding"], scale=spec["scale"],
                    mean=np.asarray(spec["mean"]), std=np.asarray(spec["std"]),
                    t_max=spec["t_max"], seed=spec["seed"])


def encode_events(manifest: dict, raw_inputs: np.ndarray, timesteps: int,
                  seed: int | None = None) -> np.ndarray:
    """The input events of each step, ``(T, N, inputs)`` int64: spikes, or direct values at step 0.

    Spike codings give what the network input sees at each step. Direct coding's input is the
    same at every step, so its values are sent during step 0 only (see ``manifest["input"]``).
    """
    node = _input_node(manifest)
    raw = np.asarray(raw_inputs)
    if raw.shape[1:] != tuple(node.shape):
        raise SnnccError(f"inputs of shape {raw.shape[1:]} do not match the bundle input "
                         f"{tuple(node.shape)}")
    count = len(raw)
    if node.coding == "direct":
        if raw.dtype.kind not in "iub" and not np.array_equal(raw, np.rint(raw)):
            raise SnnccError("direct-coded FPGA inputs must be integers")
        values = raw.astype(np.int64).reshape(count, -1)
        bits = manifest["input"]["value_bits"]
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if values.size and (values.min() < low or values.max() > high):
            raise SnnccError(f"input values {values.min()}..{values.max()} do not fit the "
                             f"bundle's {bits}-bit signed inputs ({low}..{high})")
        # Direct input is constant: the engine takes it once, at step 0, and keeps the current.
        events = np.zeros((timesteps,) + values.shape, np.int64)
        events[0] = values
        return events
    if seed is not None:
        node = dataclasses.replace(node, seed=seed)
    raster = semantics.encode_input(node, raw, timesteps)
    return raster.reshape(timesteps, count, -1).astype(np.int64)


def _write_events(path: Path, events: np.ndarray) -> None:
    timesteps, count, _ = events.shape
    chunks = [f"{count} {timesteps}\n"]
    for sample in range(count):
        for step in range(timesteps):
            row = events[step, sample]
            addresses = np.flatnonzero(row)
            chunks.append(f"{len(addresses)}\n")
            if len(addresses):
                pairs = np.stack([addresses, row[addresses]], axis=1)
                chunks.append("\n".join(f"{a} {v}" for a, v in pairs.tolist()) + "\n")
    path.write_text("".join(chunks))


def regenerate_bundle(bundle_dir: str | Path, graph: ir.Graph, manifest: dict
                      ) -> dict[str, bytes]:
    """Every file snncc generates for ``graph`` with the compile options ``manifest`` records,
    each required to equal the bundle's own file (paths confined by :func:`bundle_file`).

    A bundle is untrusted: ``hdl-check`` simulates these regenerated files, never HDL it did not
    write, and a bundle whose files differ (edited, or made by another snncc version) is refused.
    """
    import snncc
    from snncc.resources import builtin_chips

    options = dict(manifest["compile_options"])
    part = options.pop("fpga_part", "zynq-7020")
    if part not in builtin_chips():
        raise SnnccError(f"{bundle_dir}: the bundle names FPGA part {part!r}, not a built-in "
                         "part; hdl-check regenerates bundles of built-in parts only")
    try:
        files = build_bundle(graph, fpga_part=part, strict=bool(options.pop("strict", False)),
                             timesteps=options.pop("timesteps", None),
                             source_hash=manifest.get("source_hash"), options=options)
    except (TypeError, ValueError) as error:
        raise SnnccError(f"{bundle_dir}: malformed compile options in manifest.json "
                         f"({error})") from None
    for relative, data in files.items():
        path = bundle_file(bundle_dir, relative)
        if path.stat().st_size != len(data) or path.read_bytes() != data:
            raise SnnccError(f"{bundle_dir}: bundle file {relative} differs from what snncc "
                             f"{snncc.__version__} generates from the bundle's graph; hdl-check "
                             "runs only HDL that snncc generates")
    return files


def compile_bundle(bundle_dir: Path, work_dir: Path) -> Path:
    """Compile the bundle's HDL with iverilog; returns the vvp image path."""
    reason = iverilog_missing()
    if reason:
        raise SnnccError(reason)
    image = work_dir / "tb_network.vvp"
    hdl = bundle_dir / "hdl"
    command = ["iverilog", "-g2005", "-I", str(hdl), "-o", str(image),
               str(hdl / TESTBENCH_FILE), str(hdl / NETWORK_FILE), str(hdl / ENGINE_FILE)]
    if not (hdl / CONFIG_FILE).is_file():
        raise SnnccError(f"{bundle_dir}: hdl/{CONFIG_FILE} is missing")
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        message = (run.stderr or run.stdout).strip().splitlines()
        raise SnnccError(f"iverilog failed on {bundle_dir}: {message[0] if message else '?'}")
    return image


def simulate_hdl(bundle_dir: str | Path, raw_inputs: np.ndarray, timesteps: int | None = None,
                 *, seed: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> HdlResult:
    """Run ``raw_inputs`` ``(N, *input_shape)`` through the bundle's Verilog for ``timesteps``.

    ``timesteps`` defaults to the bundle's; ``seed`` overrides the rate-coding seed (as in
    :func:`snncc.engines.simulate`). The bundle's files are checked against the manifest's
    sha256 first.
    """
    bundle_dir = Path(bundle_dir).resolve()
    manifest = read_manifest(bundle_dir)
    timesteps = int(timesteps or manifest.get("timesteps") or 0)
    if timesteps < 1:
        raise SnnccError("give timesteps: the bundle does not record them")
    events = encode_events(manifest, raw_inputs, timesteps, seed)
    count = events.shape[1]
    if count == 0:
        raise SnnccError("no input samples to simulate")
    with tempfile.TemporaryDirectory(prefix="snncc-hdl-") as scratch:
        work = Path(scratch)
        image = compile_bundle(bundle_dir, work)
        events_path, trace_path = work / "events.txt", work / "trace.txt"
        _write_events(events_path, events)
        started = time.perf_counter()
        cpu_started = _children_cpu_seconds()
        try:
            run = subprocess.run(["vvp", "-n", str(image), f"+in={events_path}",
                                  f"+out={trace_path}"], cwd=bundle_dir, capture_output=True,
                                 text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise SnnccError(f"HDL simulation exceeded {timeout_s:.0f} s") from None
        seconds = time.perf_counter() - started
        cpu_seconds = _children_cpu_seconds() - cpu_started
        problems = [line for line in run.stdout.splitlines() + run.stderr.splitlines()
                    if "ERROR" in line.upper() or "cannot" in line or "WARNING" in line.upper()]
        if run.returncode != 0 or problems:
            detail = problems[0] if problems else (run.stderr or run.stdout).strip()[:200]
            raise SnnccError(f"vvp failed on {bundle_dir}: {detail}")
        text = trace_path.read_text() if trace_path.exists() else ""
    result = _parse_trace(text, manifest, timesteps, count, seconds)
    result.cpu_seconds = cpu_seconds
    return result


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _parse_trace(text: str, manifest: dict, timesteps: int, count: int,
                 seconds: float) -> HdlResult:
    spiking = [layer for layer in manifest["layers"] if layer["kind"] == "if"]
    readout = manifest["readout"]
    flat = [np.zeros((timesteps, count, layer["outputs"]), np.uint8) for layer in spiking]
    predictions = np.full((timesteps, count), -1, np.int64)
    state = np.zeros((count, readout["classes"]), np.int64)
    decision = np.full(count, -1, np.int64)
    cycles = np.zeros(count, np.int64)
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        kind, numbers = parts[0], [int(p) for p in parts[1:]]
        if kind == "s":
            sample, step, layer, neuron = numbers
            flat[layer][step, sample, neuron] = 1
        elif kind == "p":
            sample, step, label = numbers
            predictions[step, sample] = label
        elif kind == "v":
            sample, label, value = numbers
            state[sample, label] = value
        elif kind == "d":
            decision[numbers[0]] = numbers[1]
        elif kind == "c":
            cycles[numbers[0]] = numbers[1]
    if np.any(predictions < 0) or np.any(decision < 0):
        raise SnnccError("the HDL simulation ended early: its trace is incomplete")
    rasters = {layer["name"]: raster.reshape((timesteps, count) + tuple(layer["output_shape"]))
               for layer, raster in zip(spiking, flat, strict=True)}
    return HdlResult(
        timesteps=timesteps, predictions=predictions, readout_state=state,
        decision_time=decision if readout["mode"] == "first_spike" else None,
        rasters=rasters, cycles=cycles, seconds=seconds,
    )


def agreeing_samples(graph: ir.Graph, hardware: HdlResult, reference: SimResult) -> np.ndarray:
    """Per sample: True when every IF spike, every per-step prediction, the final readout state
    and (first-spike readouts) the decision step of the HDL run equal the reference simulator's.
    """
    same = np.all(hardware.predictions == reference.predictions, axis=0)
    same &= np.all(hardware.readout_state == reference.readout_state, axis=1)
    if reference.decision_time is not None:
        same &= hardware.decision_time == reference.decision_time
    for name in graph.of_type(ir.IF):
        if name not in hardware.rasters or name not in reference.rasters:
            raise SnnccError(f"layer {name!r} has no spike record in both runs")
        ours, theirs = hardware.rasters[name], reference.rasters[name]
        steps, count = theirs.shape[:2]
        same &= np.all((ours == theirs).reshape(steps, count, -1), axis=(0, 2))
    return same
