"""Project config (snncc.toml): schema checks, path resolution, command-line overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from snncc.config import ProjectConfig, load_config, parse_config
from snncc.errors import SnnccError

REPO = Path(__file__).resolve().parents[1]

FULL = """
model = "models/net.onnx"
dataset = "mnist"
data_dir = "data"
layout = "NHWC"
target = "sim"
timesteps = 16
limit = 500
passes = ["convert", "fold"]
stages = true
calibration_samples = 3000

[preprocess]
scale = 0.00392156862745098
mean = [0.1307]
std = 0.3081

[options.convert]
percentile = 99.9

[gates]
min_accuracy = 98
max_drop = { snn = 1, quantize = 0.1 }
fits = ["loihi2", "chips/mine.yaml"]
max_cores = 64
max_chips = 1

[baseline]
report = "base/report.json"
tolerance = 0.25
spikes_tolerance = 10
synops_tolerance = 5.5

[outputs]
json = "out/report.json"
junit = "out/junit.xml"
markdown = "out/summary.md"
plots = "out/plots"
"""


def write(tmp_path: Path, text: str, name: str = "snncc.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_key_is_read_with_its_type(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    assert config.dataset == "mnist" and config.layout == "NHWC" and config.target == "sim"
    assert config.timesteps == 16 and config.limit == 500 and config.stages is True
    assert config.passes == ["convert", "fold"] and config.calibration_samples == 3000
    assert config.preprocess == {"scale": pytest.approx(1 / 255), "mean": [0.1307], "std": 0.3081}
    assert config.options == {"convert": {"percentile": 99.9}}
    gates = config.gates
    assert gates.min_accuracy == 98 and gates.max_drop == {"snn": 1.0, "quantize": 0.1}
    assert gates.max_cores == 64 and gates.max_chips == 1
    assert gates.tolerance == 0.25 and gates.spikes_tolerance == 10
    assert gates.synops_tolerance == 5.5


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    config = load_config(write(tmp_path / "project", FULL))
    root = tmp_path / "project"
    assert config.model == root / "models/net.onnx"
    assert config.data_dir == root / "data"
    assert config.gates.baseline == root / "base/report.json"
    assert config.outputs == {"json": root / "out/report.json", "junit": root / "out/junit.xml",
                              "markdown": root / "out/summary.md", "plots": root / "out/plots"}
    # chip profile files are paths; chip names are not
    assert config.gates.fits == ["loihi2", str(root / "chips/mine.yaml")]


def test_absolute_paths_and_parent_references(tmp_path: Path) -> None:
    (tmp_path / "ci").mkdir()
    config = load_config(write(tmp_path / "ci", 'model = "../net.onnx"\ndata_dir = "/srv/data"\n'))
    assert config.model == tmp_path / "net.onnx"
    assert config.data_dir == Path("/srv/data")


def test_example_ci_config_points_at_the_bundled_model() -> None:
    config = load_config(REPO / "examples/ci/snncc.toml")
    assert config.model is not None and config.model.resolve() == REPO / "examples/digits_mlp.onnx"
    assert config.gates.baseline is not None and Path(config.gates.baseline).exists()


@pytest.mark.parametrize(("text", "message"), [
    ("timesteps = '16'", "key 'timesteps' must be an integer, got a string '16'"),
    ("timesteps = 16.5", "key 'timesteps' must be an integer, got a number 16.5"),
    ("timesteps = true", "key 'timesteps' must be an integer, got a boolean True"),
    ("passes = 'convert'", "key 'passes' must be a list of strings"),
    ("stages = 1", "key 'stages' must be true or false"),
    ("calibration_samples = 1e3", "key 'calibration_samples' must be an integer"),
    ("model = 3", "key 'model' must be a path string, got an integer 3"),
    ("[gates]\nmin_accuracy = '98'", "key 'gates.min_accuracy' must be a number"),
    ("[gates]\nmin_accuracy = false", "key 'gates.min_accuracy' must be a number, got a boolean"),
    ("[gates]\nmax_drop = 1.0", "key 'gates.max_drop' must be a table of numbers"),
    ("[gates]\nmax_drop = { snn = 'x' }", "key 'gates.max_drop' must be a table of numbers"),
    ("[gates]\nfits = 3", "key 'gates.fits' must be a chip name or a list"),
    ("[preprocess]\nmean = []", "key 'preprocess.mean' must be a number or a list of numbers"),
    ("[baseline]\ntolerance = [1]", "key 'baseline.tolerance' must be a number, got a list"),
    ("gates = 3", "key 'gates' must be a table, got an integer 3"),
    ("[options]\nconvert = 3", "key 'options.convert' must be a table"),
])
def test_wrong_types_name_the_key_and_the_expected_type(tmp_path: Path, text: str,
                                                         message: str) -> None:
    with pytest.raises(SnnccError, match="^config .*snncc.toml: " + _literal(message)):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(("text", "key"), [
    ("timestep = 16", "'timestep'"),
    ("[gates]\nmin_acc = 0.9", "'gates.min_acc'"),
    ("[outputs]\nhtml = 'x.html'", "'outputs.html'"),
])
def test_unknown_keys_are_named_with_the_known_ones(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(SnnccError, match=f"unknown key {key}; expected one of "):
        load_config(write(tmp_path, text))


def test_integers_are_numbers(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[preprocess]\nscale = 1\nmean = [0, 1]\n"))
    assert config.preprocess == {"scale": 1, "mean": [0.0, 1.0]}


def test_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(SnnccError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(SnnccError, match="is a directory"):
        load_config(tmp_path)
    with pytest.raises(SnnccError, match="not valid TOML"):
        load_config(write(tmp_path, "model = \n"))
    for message in (str(_error(tmp_path, "model = \n")), str(_error(tmp_path, "limit = 'x'"))):
        assert "\n" not in message


def _error(tmp_path: Path, text: str) -> SnnccError:
    with pytest.raises(SnnccError) as caught:
        load_config(write(tmp_path, text))
    return caught.value


def test_command_line_values_override_the_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    merged = config.override(timesteps=8, target=None, min_accuracy=0.5, max_drop={"snn": 3.0},
                             json=Path("here.json"), preprocess={"scale": 1.0},
                             options={"convert": {"mode": "x"}}, fits=["speck"])
    assert merged.timesteps == 8 and merged.target == "sim"  # None keeps the config's value
    assert merged.gates.min_accuracy == 0.5
    assert merged.gates.max_drop == {"snn": 3.0, "quantize": 0.1}  # merged by stage
    assert merged.gates.fits == ["speck"]
    assert merged.outputs["json"] == Path("here.json")
    assert merged.outputs["junit"] == tmp_path / "out/junit.xml"
    assert merged.preprocess["scale"] == 1.0 and merged.preprocess["mean"] == [0.1307]
    assert merged.options == {"convert": {"percentile": 99.9, "mode": "x"}}
    # the original is untouched
    assert config.timesteps == 16 and config.gates.max_drop == {"snn": 1.0, "quantize": 0.1}
    assert config.outputs["json"] == tmp_path / "out/report.json"


def test_override_rejects_unknown_names() -> None:
    with pytest.raises(KeyError):
        ProjectConfig().override(colour="red")


def test_parse_config_without_a_file() -> None:
    config = parse_config({"timesteps": 4}, Path("dir/snncc.toml"))
    assert config.timesteps == 4 and config.path == Path("dir/snncc.toml")


def _literal(text: str) -> str:
    import re

    return re.escape(text)


def test_targets_list_or_single_target(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'targets = ["sim", "lava"]\n'))
    assert config.run_targets() == ["sim", "lava"]
    assert config.override(target="lava").run_targets() == ["lava"]  # the flag replaces the list
    assert ProjectConfig().run_targets() == ["sim"]
    with pytest.raises(SnnccError, match="either 'target' or 'targets', not both"):
        load_config(write(tmp_path, 'target = "sim"\ntargets = ["lava"]\n'))
    with pytest.raises(SnnccError, match="key 'targets' must be a non-empty list"):
        load_config(write(tmp_path, "targets = []\n"))
