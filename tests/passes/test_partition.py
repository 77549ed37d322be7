"""Partition analysis: hand-computed fits per chip, splitting, placement, reports, the command.

Figures are computed by hand from the formulas in snncc/resources.py and the chip sources in
snncc/chips/*.yaml (nengo-loihi's synapse cost, the DYNAP-CNN memory formulas, TrueNorth's
256 x 256 crossbar, BRAM36 packing).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from snncc import ir
from snncc.commands.partition import register
from snncc.errors import SnnccError
from snncc.passes.partition import (
    greedy_placement,
    inter_chip_traffic,
    kernighan_lin_placement,
    partition,
)
from snncc.report_partition import to_json, to_markdown
from snncc.resources import chip_from_dict, load_chip

REPO = Path(__file__).resolve().parents[2]


def dense_net(weight: np.ndarray, *, flat_input: bool = True) -> ir.Graph:
    """Input -> Dense(weight) -> IF -> Readout."""
    graph = ir.Graph({"source": "test"})
    graph.chain(
        ("input", ir.Input(shape=(weight.shape[1],))),
        ("fc", ir.Dense(weight=weight)),
        ("if", ir.IF(threshold=np.array([1]))),
        ("out", ir.Readout()),
    )
    return graph


def conv_net(weight: np.ndarray, size: int, padding: int = 1) -> ir.Graph:
    graph = ir.Graph({"source": "test"})
    graph.chain(
        ("input", ir.Input(shape=(weight.shape[1], size, size))),
        ("conv", ir.Conv2d(weight=weight, padding=padding)),
        ("if", ir.IF(threshold=np.array([1]))),
        ("flatten", ir.Flatten()),
        ("out", ir.Readout()),
    )
    return graph


def int8_extremes(shape: tuple[int, ...]) -> np.ndarray:
    """8-bit weights spanning -128..127 (so the layer needs exactly 8 bits)."""
    weight = np.full(shape, 5, dtype=np.int16)
    weight.flat[0], weight.flat[-1] = -128, 127
    return weight


# --------------------------------------------------------------------------------------- Loihi


def test_loihi_neurons_exactly_at_the_core_limit() -> None:
    report = partition(dense_net(np.ones((1024, 4), dtype=np.int8)), "loihi")
    assert report.fits and report.cores_used == 1
    assert report.cores[0].utilization["neurons"] == (1024, 1024)
    over = partition(dense_net(np.ones((1025, 4), dtype=np.int8)), "loihi")
    assert over.fits and over.cores_used == 2          # ceil(1025 / 1024)
    assert [b.neurons for b in over.layers[0].blocks] == [512, 513]


def test_loihi_synapse_memory_exactly_at_the_limit() -> None:
    # 4096 axons x (30 x 8 + 10 = 250 -> 256 bits) = 1,048,576 bits = the core's synapse memory,
    # and 4096 input axons = MAX_IN_AXONS.
    report = partition(dense_net(int8_extremes((30, 4096))), "loihi")
    assert report.fits and report.cores_used == 1
    assert report.cores[0].utilization["synapse_memory_bits"] == (1048576, 1048576)
    assert report.cores[0].utilization["input_axons"] == (4096, 4096)
    # 31 outputs: 31 x 8 + 10 = 258 -> 320 bits per axon, 1,310,720 bits: ceil(1.25) = 2 pieces.
    over = partition(dense_net(int8_extremes((31, 4096))), "loihi")
    assert over.fits and over.layers[0].lower_bound == 2 and over.cores_used == 2
    assert over.layers[0].whole_usage["synapse_memory_bits"] == 1310720


def test_loihi_input_axons_cannot_be_split() -> None:
    report = partition(dense_net(np.ones((2, 4097), dtype=np.int8)), "loihi")
    assert not report.fits
    assert report.violations[0] == ("layer 'fc': input axons 4097 exceeds the per-core limit of "
                                    "4096 even with one neuron per core")


def test_unsplittable_synapse_memory_wording() -> None:
    chip = chip_from_dict({"name": "one-core", "kind": "neuromorphic", "cores_per_chip": 4,
                           "split": False, "synapse_encoding": "nengo-loihi",
                           "core": {"synapse_memory_bits": 1048576}})
    report = partition(dense_net(int8_extremes((31, 4096))), chip)
    assert report.verdict == ("does not fit: layer 'fc': synapse memory 160 KiB exceeds the "
                              "per-core limit of 128 KiB")


def test_loihi_conv_splits_by_channels_then_tiles() -> None:
    # 4 channels x 32 x 32 = 4096 neurons: 4 pieces, one channel each.
    report = partition(conv_net(np.ones((4, 1, 3, 3), dtype=np.int8), 32), "loihi")
    plan = report.layers[0]
    assert plan.split == "4 channel groups"
    assert [b.channels for b in plan.blocks] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert all(u["neurons"] == 1024 for u in plan.usage)
    # One channel of 64 x 64: only spatial tiles can split it, 2 x 2 tiles of 32 x 32.
    single = partition(conv_net(np.ones((1, 1, 3, 3), dtype=np.int8), 64), "loihi").layers[0]
    assert single.split == "1 channel groups x 2x2 tiles"
    assert [(b.rows, b.cols) for b in single.blocks] == [
        ((0, 32), (0, 32)), ((0, 32), (32, 64)), ((32, 64), (0, 32)), ((32, 64), (32, 64))]


def test_loihi_needs_two_chips_and_gates() -> None:
    weight = np.ones((1024 * 129, 2), dtype=np.int8)  # 129 cores of 1024 neurons
    report = partition(dense_net(weight), "loihi")
    assert (report.cores_used, report.chips_needed) == (129, 2)
    assert report.violations == ["network: needs 2 chips (129 cores at 128 per chip), exceeds "
                                 "the 1 chip(s) of loihi"]
    assert report.cores_per_chip == [128, 1] or sorted(report.cores_per_chip) == [1, 128]
    small = dense_net(np.ones((2048, 2), dtype=np.int8))
    assert partition(small, "loihi", max_cores=2).fits
    gated = partition(small, "loihi", max_cores=1, max_chips=1)
    assert gated.violations == ["network: 2 cores exceeds the --max-cores gate of 1"]


def test_float_weights_counted_at_8_bits(tiny_mlp: ir.Graph) -> None:
    report = partition(tiny_mlp, "loihi")
    assert all(plan.layer.weight_bits == 8 for plan in report.layers)
    assert any("counted at 8 bits" in note for note in report.notes)
    forced = partition(tiny_mlp, "loihi", weight_bits=2)
    assert all(plan.layer.weight_bits == 2 for plan in forced.layers)


def test_partition_does_not_mutate(tiny_cnn: ir.Graph) -> None:
    before = tiny_cnn.copy()
    partition(tiny_cnn, "loihi")
    assert list(before.nodes) == list(tiny_cnn.nodes)
    for name, node in before.nodes.items():
        for key, value in node.arrays().items():
            np.testing.assert_array_equal(value, tiny_cnn.nodes[name].arrays()[key])


# ------------------------------------------------------------------------------------- Speck


def test_speck_kernel_and_neuron_memory_exactly_at_the_largest_core() -> None:
    # kernel: 64 x 2^(ceil(log2 9) + ceil(log2 64)) = 64 x 2^10 = 65,536 (cores 5 and 6 only);
    # neurons: 64 x 2^(4 + 4) = 16,384 = the neuron memory of cores 5 and 6.
    report = partition(conv_net(np.ones((64, 64, 3, 3), dtype=np.int8), 16), "speck")
    assert report.fits
    (core,) = report.cores
    assert core.index in (5, 6)
    assert core.utilization == {"kernel_memory": (65536, 65536), "neuron_memory": (16384, 16384)}


def test_speck_kernel_memory_over_every_core() -> None:
    # 65 features: ceil(log2 65) = 7 -> 64 x 2^11 = 131,072 entries.
    report = partition(conv_net(np.ones((65, 64, 3, 3), dtype=np.int8), 16), "speck")
    assert report.verdict == ("does not fit: layer 'conv': kernel memory 131072 entries exceeds "
                              "the largest per-core limit of 65536 entries")


def test_speck_kernel_side_and_layer_count() -> None:
    report = partition(conv_net(np.ones((2, 1, 17, 17), dtype=np.int8), 20, padding=0), "speck")
    assert report.violations[0] == "layer 'conv': kernel 17x17 exceeds the per-core limit of 16x16"
    graph = ir.Graph()
    graph.add("input", ir.Input(shape=(4,)))
    previous = "input"
    for index in range(10):
        previous = graph.add(f"fc{index}", ir.Dense(weight=np.ones((4, 4), dtype=np.int8)),
                             previous)
        previous = graph.add(f"if{index}", ir.IF(threshold=np.array([1])), previous)
    report = partition(graph, "speck")
    assert ("network: 10 layers exceeds the 9 cores of speck (one layer per core, layers cannot "
            "be split)") in report.violations


def test_speck_matching_when_only_two_cores_are_large_enough() -> None:
    graph = ir.Graph()
    graph.add("input", ir.Input(shape=(64, 16, 16)))
    previous = "input"
    for index in range(3):  # three layers of 65,536 kernel entries: only cores 5 and 6 hold one
        previous = graph.add(f"conv{index}", ir.Conv2d(weight=np.ones((64, 64, 3, 3), np.int8),
                                                       padding=1), previous)
        previous = graph.add(f"if{index}", ir.IF(threshold=np.array([1])), previous)
    report = partition(graph, "speck")
    assert not report.fits
    assert report.violations[0].startswith("network: no assignment of layers to the 9 cores")
    # With two such layers a perfect matching exists.
    graph.remove("if2")
    graph.remove("conv2")
    assert partition(graph, "speck").fits


def test_speck_destinations() -> None:
    graph = ir.Graph()
    graph.add("input", ir.Input(shape=(4,)))
    graph.add("fc", ir.Dense(weight=np.ones((4, 4), dtype=np.int8)), "input")
    graph.add("if", ir.IF(threshold=np.array([1])), "fc")
    for branch in "abc":
        graph.add(f"fc_{branch}", ir.Dense(weight=np.ones((4, 4), dtype=np.int8)), "if")
    graph.add("sum", ir.Add(), ["fc_a", "fc_b", "fc_c"])
    graph.add("out", ir.Readout(), "sum")
    report = partition(graph, "speck")
    assert report.violations[0] == "layer 'fc': 3 destination layers exceeds the per-core limit of 2"


# ---------------------------------------------------------------------------------- TrueNorth


def binary(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.where(np.random.default_rng(seed).random(shape) < 0.5, -1, 1).astype(np.int8)


def test_truenorth_crossbar_exactly_full() -> None:
    report = partition(dense_net(binary((256, 256))), "truenorth")
    assert report.fits and report.cores_used == 1
    assert report.cores[0].utilization == {
        "neurons": (256, 256), "input_axons": (256, 256), "output_axons": (256, 256),
        "fan_in": (256, 256), "synapses": (65536, 65536)}
    assert partition(dense_net(binary((512, 256))), "truenorth").cores_used == 2


def test_truenorth_fan_in_and_weight_width() -> None:
    report = partition(dense_net(binary((8, 257))), "truenorth")
    assert report.violations == ["layer 'fc': input axons 257 exceeds the per-core limit of 256 "
                                 "even with one neuron per core"]
    eight_bit = partition(dense_net(int8_extremes((8, 16))), "truenorth")
    assert eight_bit.violations[0] == ("layer 'fc': weights need 8 bits, exceeds the 1-bit "
                                       "synapses of truenorth")


# ---------------------------------------------------------------------------------------- FPGA


def test_fpga_block_ram_exactly_at_the_device_limit() -> None:
    # Bundle layout: 16 words (inputs) of 10,080 one-bit lanes (neurons); 512x72 blocks:
    # ceil(16 / 512) * ceil(10080 / 72) = 140 = the Zynq-7020's BRAM36 count.
    report = partition(dense_net(binary((10080, 16))), "zynq-7020")
    assert report.fits
    assert report.cores[0].utilization == {"bram36": (140, 140)}
    over = partition(dense_net(binary((10081, 16))), "zynq-7020")
    assert over.verdict == ("does not fit: layer 'fc': block RAM 141 BRAM36 exceeds the device "
                            "limit of 140 BRAM36")


def test_fpga_layers_share_the_device() -> None:
    graph = ir.Graph()
    graph.add("input", ir.Input(shape=(16,)))
    graph.add("fc1", ir.Dense(weight=binary((10080, 16))), "input")   # 140 BRAM36
    graph.add("if1", ir.IF(threshold=np.array([1])), "fc1")
    # 10,080 words of 10 one-bit lanes: 2Kx18 -> ceil(10080 / 2048) = 5 blocks.
    graph.add("fc2", ir.Dense(weight=binary((10, 10080))), "if1")
    graph.add("out", ir.Readout(), "fc2")
    report = partition(graph, "zynq-7020")
    assert report.violations == ["network: block RAM 145 BRAM36 exceeds the device limit of "
                                 "140 BRAM36"]


# ----------------------------------------------------------------------------------- placement


def block_diagonal_net() -> tuple[ir.Graph, dict]:
    """fc1 (8 -> 8) and fc2 (8 -> 8) split in halves; fc2's halves read only "their" fc1 half.

    Greedy placement (cores in order, 2 per chip) puts both fc1 halves on chip 0 and both fc2
    halves on chip 1, so every synapse crosses; pairing each fc1 half with its fc2 half cuts
    nothing.
    """
    graph = ir.Graph()
    second = np.zeros((8, 8), dtype=np.int8)
    second[:4, :4] = 1
    second[4:, 4:] = 1
    graph.chain(
        ("input", ir.Input(shape=(8,))),
        ("fc1", ir.Dense(weight=np.ones((8, 8), dtype=np.int8))),
        ("if1", ir.IF(threshold=np.array([1]))),
        ("fc2", ir.Dense(weight=second)),
        ("if2", ir.IF(threshold=np.array([1]))),
    )
    chip = {"name": "pairs", "kind": "neuromorphic", "cores_per_chip": 2, "chips": 2,
            "core": {"neurons": 4}}
    return graph, chip


def test_partitioner_beats_greedy() -> None:
    graph, chip = block_diagonal_net()
    report = partition(graph, chip_from_dict(chip), spike_rates={"if1": 0.5, "if2": 0.25})
    assert report.fits and report.chips_needed == 2
    placement = report.placement
    # 32 nonzero fc2 synapses, each source firing 0.5 per step: greedy cuts all of them.
    assert placement.greedy_traffic == pytest.approx(16.0)
    assert placement.partitioner_traffic == 0.0 and placement.traffic == 0.0
    assert placement.method.startswith("kernighan-lin")
    chips = {core.blocks[0]: core.chip for core in report.cores}
    assert chips["fc1[0]"] == chips["fc2[0]"] != chips["fc1[1]"] == chips["fc2[1]"]
    assert report.rates_measured


def test_placement_functions_respect_capacity() -> None:
    traffic = {(0, 3): 5.0, (1, 2): 5.0, (0, 1): 1.0}
    greedy = greedy_placement(4, 2)
    assert greedy == [0, 0, 1, 1]
    placed = kernighan_lin_placement(traffic, 4, 2, 2)
    assert sorted(placed) == [0, 0, 1, 1]
    assert inter_chip_traffic(traffic, placed) <= inter_chip_traffic(traffic, greedy)
    assert inter_chip_traffic(traffic, placed) == 1.0


# ------------------------------------------------------------------------------------- reports


def test_json_and_markdown_reports(tiny_cnn: ir.Graph) -> None:
    report = partition(tiny_cnn, "loihi")
    data = json.loads(json.dumps(to_json(report)))
    assert data["schema"] == "snncc.partition/1" and data["fits"] is True
    assert data["cores_used"] == 3 and data["chips_needed"] == 1
    used, limit = data["cores"][0]["utilization"]["neurons"]
    assert limit == 1024 and used == data["layers"][0]["layer"]["neurons"]
    markdown = to_markdown(report)
    assert "**fits**" in markdown and "| `conv1` | conv |" in markdown


# ------------------------------------------------------------------------------------- command


@pytest.fixture
def app() -> typer.Typer:
    application = typer.Typer()
    register(application)

    @application.callback()
    def _root() -> None:
        """Test app."""

    return application


def test_cli_fits_writes_reports(app: typer.Typer, tmp_path: Path, tiny_cnn: ir.Graph) -> None:
    model = tiny_cnn.save(tmp_path / "tiny.snn.npz")
    result = CliRunner().invoke(app, ["partition", str(model), "--chip", "loihi", "--json",
                                      str(tmp_path / "r.json"), "--markdown",
                                      str(tmp_path / "r.md")])
    assert result.exit_code == 0, result.output
    assert "verdict: fits" in result.output
    assert json.loads((tmp_path / "r.json").read_text())["fits"] is True
    assert "**fits**" in (tmp_path / "r.md").read_text()


def test_cli_does_not_fit_and_gates(app: typer.Typer, tmp_path: Path) -> None:
    model = dense_net(np.ones((2048, 2), dtype=np.int8)).save(tmp_path / "wide.snn.npz")
    runner = CliRunner()
    assert runner.invoke(app, ["partition", str(model), "--chip", "loihi"]).exit_code == 0
    gated = runner.invoke(app, ["partition", str(model), "--chip", "loihi", "--max-cores", "1"])
    assert gated.exit_code == 1 and "--max-cores gate of 1" in gated.output
    wide_fan_in = dense_net(np.ones((2, 300), dtype=np.int8)).save(tmp_path / "fan.snn.npz")
    truenorth = runner.invoke(app, ["partition", str(wide_fan_in), "--chip", "truenorth"])
    assert truenorth.exit_code == 1 and "input axons 300 exceeds" in truenorth.output


def test_cli_bad_input_raises_snncc_error(app: typer.Typer, tmp_path: Path) -> None:
    model = dense_net(np.ones((4, 2), dtype=np.int8)).save(tmp_path / "m.snn.npz")
    result = CliRunner().invoke(app, ["partition", str(model), "--chip", "nope"])
    assert isinstance(result.exception, SnnccError) and result.exception.exit_code == 2
    profile = tmp_path / "bad.yaml"
    profile.write_text("name: bad\nkind: neuromorphic\ncores_per_chip: 2\ncore:\n  neurons: x\n")
    result = CliRunner().invoke(app, ["partition", str(model), "--chip", str(profile)])
    assert "key 'core.neurons' must be a positive integer" in str(result.exception)


def test_cli_exit_codes_end_to_end(tmp_path: Path) -> None:
    """Through the real entry point: one line on stderr and exit 2 for bad input."""
    model = dense_net(np.ones((4, 2), dtype=np.int8)).save(tmp_path / "m.snn.npz")
    command = [sys.executable, "-m", "snncc", "partition", str(model), "--chip"]
    bad = subprocess.run(command + ["loihi9"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown chip 'loihi9'" in bad.stderr
    assert "Traceback" not in bad.stderr
    good = subprocess.run(command + ["loihi"], cwd=REPO, capture_output=True, text=True)
    assert good.returncode == 0, good.stderr


def test_cli_measures_spike_rates(app: typer.Typer, tmp_path: Path) -> None:
    """--dataset runs the reference simulator on calibration samples (digits, bundled)."""
    rng = np.random.default_rng(0)
    graph = ir.Graph({"source": "test"})
    graph.chain(
        ("input", ir.Input(shape=(1, 8, 8), scale=1 / 255)),
        ("flatten", ir.Flatten()),
        ("fc1", ir.Dense(weight=rng.normal(0, 1, (16, 64)))),
        ("if1", ir.IF(threshold=np.array([1.0]))),
        ("fc2", ir.Dense(weight=rng.normal(0, 1, (10, 16)))),
        ("out", ir.Readout()),
    )
    model = graph.save(tmp_path / "snn.snn.npz")
    result = CliRunner().invoke(app, ["partition", str(model), "--chip", "loihi", "--dataset",
                                      "digits", "--timesteps", "4", "--limit", "8", "--json",
                                      str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["rates_measured"] is True
    assert 0.0 <= data["spike_rates"]["if1"] <= 1.0


def test_measured_rates_scale_traffic() -> None:
    graph, chip = block_diagonal_net()
    profile = chip_from_dict(chip)
    unmeasured = partition(graph, profile)
    assert not unmeasured.rates_measured
    assert unmeasured.placement.greedy_traffic == pytest.approx(32.0)  # rate 1.0 x 32 synapses
    assert load_chip("loihi").name == "loihi"


def test_violations_are_listed_in_layer_order() -> None:
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(300,))),
        ("fc1", ir.Dense(weight=binary((300, 300)))),
        ("if1", ir.IF(threshold=np.array([1]))),
        ("fc2", ir.Dense(weight=binary((10, 300), seed=1))),
        ("out", ir.Readout()),
    )
    report = partition(graph, "truenorth")
    assert [v.split(":")[0] for v in report.violations] == ["layer 'fc1'", "layer 'fc2'"]


def test_output_axons_count_destination_cores() -> None:
    chip = chip_from_dict({"name": "axons", "kind": "neuromorphic", "cores_per_chip": 16,
                           "core": {"neurons": 1024, "output_axons": 1024}})
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(4,))),
        ("fc1", ir.Dense(weight=np.ones((1024, 4), dtype=np.int8))),
        ("if1", ir.IF(threshold=np.array([1]))),
        ("fc2", ir.Dense(weight=np.ones((2048, 1024), dtype=np.int8))),  # 2 blocks of 1024
        ("if2", ir.IF(threshold=np.array([1]))),
    )
    report = partition(graph, chip)
    first, second = report.layers
    assert second.pieces == 2 and first.reach == 2
    # Each fc1 neuron sends to both fc2 cores: 1024 x 2 = 2048 output axons -> 2 pieces.
    assert first.whole_usage["output_axons"] == 2048 and first.pieces == 2
    assert all(u["output_axons"] == 1024 for u in first.usage)


def test_partitioner_budget_falls_back_to_greedy(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    import snncc.passes.partition as partition_module

    monkeypatch.setattr(partition_module, "PARTITIONER_MAX_CORES", 3)
    graph, chip = block_diagonal_net()
    report = partition(graph, chip_from_dict(chip))
    assert report.placement.method.startswith("greedy (4 cores exceed")
    assert report.placement.traffic == report.placement.greedy_traffic
    from snncc.report_partition import write_json

    text = write_json(report, tmp_path / "r.json").read_text()
    assert "NaN" not in text  # not computed -> null: strict JSON
    assert json.loads(text)["placement"]["partitioner_traffic"] is None
