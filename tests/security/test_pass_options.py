"""Issue 21, defect 7: pass options (flags and snncc.toml) are type-checked before any work."""

from __future__ import annotations

import pytest
from hostile import EXAMPLE_ONNX, assert_refused, run_cli

BAD_OPTIONS = [
    ("convert.percentile=abc", "convert.percentile"),
    ("convert.calibration_samples=abc", "convert.calibration_samples"),
    ("convert.calibration_samples=1.5", "convert.calibration_samples"),
    ("convert.v_init_fraction=[1]", "convert.v_init_fraction"),
    ("convert.bias_correction_rounds=x", "convert.bias_correction_rounds"),
    ("convert.per_channel=2", "convert.per_channel"),
    ("fold.weight_bits=abc", "fold.weight_bits"),
    ("fold.input_max=abc", "fold.input_max"),
    ("quantize.bits=abc", "quantize.bits"),
    ("quantize.weight_percentile=abc", "quantize.weight_percentile"),
    ("quantize.target=7", "quantize.target"),
    ("prune.sparsity=half", "prune.sparsity"),
    ("prune.layers=7", "prune.layers"),
    ("prune.rounds=abc", "prune.rounds"),
    ("binarize.per_channel=yes", "binarize.per_channel"),
    ("binarize.layers={}", "binarize.layers"),
    ("reset_zero.bias_correction_rounds=x", "reset_zero.bias_correction_rounds"),
    ("reset_zero.bias_correction=2", "reset_zero.bias_correction"),
    ("pool_fold.x=1", "unknown option pool_fold.x"),
    ("nosuch.x=1", "unknown pass 'nosuch'"),
]


def test_every_registered_pass_declares_its_options():
    """check_options reads each pass's OPTIONS; a pass without them was an internal error
    (exit 3) for any --option naming it."""
    from snncc.passes import OPTION_KINDS, REGISTRY, check_options, pass_options
    from snncc.profiles import PROFILES

    for name in REGISTRY:
        assert set(pass_options(name).values()) <= set(OPTION_KINDS), name
    for profile in PROFILES.values():
        check_options(profile.pass_options)


@pytest.mark.parametrize(("option", "fragment"), BAD_OPTIONS)
def test_bad_option_value(tmp_path, option, fragment):
    passes = "convert,binarize,fold,quantize,prune"
    run = run_cli("compile", EXAMPLE_ONNX, "--passes", passes, "--option", option, "-T", "4",
                  "-o", tmp_path / "out")
    assert_refused(run, fragment)
    assert run.seconds < 60


def test_toml_options_are_checked(tmp_path):
    config = tmp_path / "snncc.toml"
    config.write_text(f'model = "{EXAMPLE_ONNX}"\nlimit = 5\ntimesteps = 4\n'
                      '[options.convert]\npercentile = "abc"\n')
    assert_refused(run_cli("validate", "--config", config), "convert.percentile")
    config.write_text(f'model = "{EXAMPLE_ONNX}"\nlimit = 5\ntimesteps = 4\n'
                      '[options.nosuch]\nx = 1\n')
    assert_refused(run_cli("validate", "--config", config), "unknown pass 'nosuch'")


def test_good_options_still_work(tmp_path):
    run = run_cli("compile", EXAMPLE_ONNX, "--option", "convert.percentile=99.5", "--option",
                  "convert.threshold_method=percentile", "-T", "4", "-o", tmp_path / "out")
    assert run.returncode == 0, run.describe()
