"""Issue 21, defects 4 and 10: a training checkpoint is checked before the compiled kernel runs."""

from __future__ import annotations

import pytest
from hostile import assert_refused, malformed_checkpoint, run_cli, wrong_shape_checkpoint

TRAIN = ("train", "bstdg", "--dataset", "digits", "--hidden", "8", "--epochs", "1",
         "--limit", "100", "--resume")


def test_checkpoint_of_the_wrong_shapes_is_refused(tmp_path):
    output = tmp_path / "net.bstdg.h5"
    wrong_shape_checkpoint(output)
    run = run_cli(*TRAIN, "-o", output)  # segfaulted (exit -11 / 139) inside the kernel
    assert_refused(run, "weight0", "(8, 64)")
    assert not output.exists()


@pytest.mark.parametrize("state", [[1, 2], {"format": "snncc-bstdg-checkpoint", "version": 2},
                                   "text", None])
def test_malformed_checkpoint_state_is_refused(tmp_path, state):
    output = tmp_path / "net.bstdg.h5"
    malformed_checkpoint(output, state)
    assert_refused(run_cli(*TRAIN, "-o", output), "checkpoint")
