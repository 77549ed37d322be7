"""``--target lava`` aims at netx: the loihi2-netx profile by default, ``--profile``,
``--require-netx`` and its ``snncc.toml`` key, and what the compile output says about netx."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import tiny_cnn_graph
from test_cli import EXAMPLE, assert_one_line_error, snncc

from snncc.backends import netx

pytestmark = pytest.mark.skipif(importlib.util.find_spec("lava") is None,
                                reason="lava-nc is not installed (pip install 'snncc[lava]')")


@pytest.fixture(scope="module")
def maxpool_model(tmp_path_factory):
    """A float CNN on 8x8 digits with a max pool (saved IR)."""
    path = tmp_path_factory.mktemp("model") / "cnn.snn.npz"
    tiny_cnn_graph().save(path)
    return path


def test_compile_lava_writes_netx_by_default_with_the_loihi2_fit(tmp_path):
    out = tmp_path / "out"
    result = snncc("compile", str(EXAMPLE), "--target", "lava", "-T", "8", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "netx: network.net written" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    summary = json.loads((out / "compile.json").read_text())
    assert manifest["netx"] == "network.net" and manifest["profile"] == "loihi2-netx"
    assert summary["profile"] == "loihi2-netx" and summary["passes"] == [
        "convert", "pool_fold", "reset_zero", "single_threshold", "fold", "quantize"]
    fit = manifest["loihi2_fit"]
    assert fit["fits"] and fit["cores_used"] >= 2 and fit["chip"] == "loihi2"
    neurons = fit["cores"][0]["utilization"]["neurons"]
    assert neurons[0] <= neurons[1] == 8192
    assert netx.lint_netx(out / "network.net") == []


def test_profile_lava_cpu_keeps_todays_pipeline_and_writes_no_netx(tmp_path):
    out = tmp_path / "out"
    result = snncc("compile", str(EXAMPLE), "--target", "lava", "-T", "8", "-o", str(out),
                   "--profile", "lava-cpu")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["netx"] is None and manifest["profile"] == "lava-cpu"
    assert "netx: no network.net: " in result.stdout
    assert any("reset by subtraction" in reason for reason in manifest["netx_inexpressible"])
    bad = snncc("compile", str(EXAMPLE), "--target", "lava", "-o", str(tmp_path / "x"),
                "--profile", "loihi3")
    assert_one_line_error(bad, "unknown profile 'loihi3'", "loihi2-netx, lava-cpu")


def test_max_pool_is_named_in_one_line_and_require_netx_exits_2(tmp_path, maxpool_model):
    common = ("compile", str(maxpool_model), "--target", "lava", "--dataset", "digits", "-T", "8")
    out = tmp_path / "out"
    result = snncc(*common, "-o", str(out))
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("netx:")]
    assert "node 'pool2'" in line and "max pooling" in line
    assert json.loads((out / "manifest.json").read_text())["netx"] is None
    required = snncc(*common, "-o", str(tmp_path / "strict"), "--require-netx")
    assert_one_line_error(required, "--require-netx", "node 'pool2'", "max pooling")
    assert not (tmp_path / "strict").exists()
    assert_one_line_error(snncc("compile", str(EXAMPLE), "-o", str(tmp_path / "s"),
                                "--require-netx"), "target 'sim' has no option 'require_netx'")


def test_require_netx_in_validate_and_in_snncc_toml(tmp_path, maxpool_model):
    config = tmp_path / "snncc.toml"
    config.write_text(f'model = "{maxpool_model}"\ndataset = "digits"\ntarget = "sim"\n'
                      'timesteps = 4\nlimit = 20\nprofile = "loihi2-netx"\nrequire_netx = true\n')
    assert_one_line_error(snncc("validate", "--config", str(config)), "node 'pool2'",
                          "max pooling")
    report_path = tmp_path / "report.json"
    relaxed = snncc("validate", "--config", str(config), "--no-require-netx",
                    "--json", str(report_path))
    assert relaxed.returncode == 0, relaxed.stderr
    report = json.loads(report_path.read_text())
    assert report["profile"] == "loihi2-netx" and report["passes"] == [
        "convert", "pool_fold", "reset_zero", "single_threshold", "fold", "quantize"]
    config.write_text('require_netx = "yes"\n')
    assert_one_line_error(snncc("validate", "--config", str(config)), "require_netx",
                          "true or false")
    ok = snncc("validate", str(EXAMPLE), "-T", "8", "--limit", "40", "--profile", "loihi2-netx",
               "--require-netx", "--json", str(report_path))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(report_path.read_text())["profile"] == "loihi2-netx"
    plain = snncc("validate", str(EXAMPLE), "-T", "8", "--limit", "40", "--json",
                  str(report_path))
    assert plain.returncode == 0, plain.stderr
    assert json.loads(report_path.read_text())["profile"] is None  # the sim target has none


def test_pass_warnings_reach_the_user(tmp_path):
    """quantize's warning (an output layer left with few of 8 bits at a very long T, even split
    over 16 readout parts) is printed, naming the layer and what would leave it more bits; the
    compile still succeeds."""
    result = snncc("compile", str(EXAMPLE), "--target", "lava", "-T", "32767", "--passes",
                   "convert,reset_zero,single_threshold,fold,quantize",
                   "--option", "convert.bias_correction=false",
                   "--option", "reset_zero.bias_correction=false",
                   "--option", "reset_zero.refit=false", "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(lines) == 1 and "quantize: layer 'fc2' keeps only" in lines[0], result.stderr
    assert "a smaller T leaves it more bits" in lines[0]
