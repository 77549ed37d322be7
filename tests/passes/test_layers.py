"""Shared layer helpers of the deployment passes (snncc/passes/layers.py)."""

from __future__ import annotations

import numpy as np
import pytest

from snncc import ir
from snncc.errors import SnnccError
from snncc.passes.layers import (
    CALIBRATED_CURRENT_MARGIN,
    input_magnitude,
    layers,
    step_current_bound,
    step_currents,
)


def _graph() -> ir.Graph:
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(3,))),
                ("fc", ir.Dense(weight=np.array([[1.0, -2.0, 0.5]]), bias=np.array([0.25]))),
                ("if", ir.IF()), ("out", ir.Dense(weight=np.ones((2, 1)))),
                ("readout", ir.Readout()))
    return graph


def test_worst_case_and_calibrated_step_currents():
    graph = _graph()
    worst = step_current_bound(graph.nodes["fc"], 10.0)
    np.testing.assert_allclose(worst, [3.5 * 10 + 0.25])
    assert step_currents(graph, "fc", 10.0, None) == pytest.approx(worst)
    calibration = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0]])  # currents 1.25 and -0.75
    np.testing.assert_allclose(step_currents(graph, "fc", 10.0, calibration),
                               [CALIBRATED_CURRENT_MARGIN * 1.25])
    # later layers (spike inputs) always use the worst case
    np.testing.assert_allclose(step_currents(graph, "out", 1.0, calibration), [1.0, 1.0])


def test_input_magnitude_through_pools():
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(1, 4, 4))), ("conv", ir.Conv2d(weight=np.ones((2, 1, 1, 1)))),
                ("if", ir.IF()), ("pool", ir.SumPool2d(kernel=2, stride=2)),
                ("max", ir.MaxPool2d(kernel=2, stride=2)))
    bounds = input_magnitude(graph, 255)
    assert bounds["input"] == 255 and bounds["if"] == 1 and bounds["pool"] == 4
    assert bounds["max"] == 4


def test_layers_require_a_converted_graph(tiny_mlp):
    with pytest.raises(SnnccError, match="layer 'fc1' feeds relu1 \\(ReLU\\)"):
        layers(tiny_mlp, "fold")
