"""Energy and latency per inference (snncc.energy) and the profiles' published figures."""

from __future__ import annotations

import math

import pytest

from snncc.energy import estimate
from snncc.errors import SnnccError
from snncc.resources import builtin_chips, chip_from_dict, load_chip

ACTIVITY = {"synops": 200_000.0, "spikes": 3_000.0, "neurons": 310, "timesteps": 16,
            "cores": 3}


def test_loihi_energy_is_the_sum_of_the_published_terms():
    estimate_ = estimate(load_chip("loihi"), **ACTIVITY)
    expected = {"synaptic_events": 200_000 * 23.6e-12, "neuron_updates": 310 * 16 * 81e-12,
                "spikes": 3_000 * 1.7e-12}
    assert estimate_.terms == pytest.approx(expected)
    assert estimate_.energy_j == pytest.approx(sum(expected.values()))
    assert estimate_.missing == ["static"]
    per_step = 200_000 / 16 / 3 * 3.5e-9 + math.ceil(310 / 3) * 8.4e-9 + 465e-9
    assert estimate_.latency_s == pytest.approx(16 * per_step)
    assert "Davies" in estimate_.sources["synaptic_event_j"]


def test_truenorth_prices_synaptic_events_all_in_at_a_1_ms_tick():
    estimate_ = estimate(load_chip("truenorth"), **ACTIVITY)
    assert estimate_.energy_j == pytest.approx(200_000 * 26e-12)
    assert estimate_.latency_s == pytest.approx(16e-3)
    assert "Merolla" in estimate_.sources["synaptic_event_j"]


@pytest.mark.parametrize("chip", ["loihi2", "speck", "kapoho-point", "zynq-7020"])
def test_chips_without_published_figures_give_no_estimate(chip):
    estimate_ = estimate(load_chip(chip), **ACTIVITY)
    assert estimate_.energy_j is None and estimate_.latency_s is None
    assert "synaptic_events" in estimate_.missing
    assert "not published" in estimate_.notes.lower()


def test_every_builtin_figure_names_its_source():
    for name in builtin_chips():
        energy = load_chip(name).energy
        assert energy is not None, name
        for figure, value in energy.figures().items():
            if value is not None:
                assert energy.sources[figure].strip(), (name, figure)


BASE = {"name": "x", "kind": "neuromorphic", "cores_per_chip": 1, "core": {"neurons": 4}}


@pytest.mark.parametrize("energy, fragment", [
    ({"synaptic_event_j": 1e-12}, "has no entry in 'energy.sources'"),
    ({"synaptic_event_j": -1.0, "sources": {"synaptic_event_j": "x"}}, "non-negative number"),
    ({"synaptic_event_j": "23 pJ", "sources": {"synaptic_event_j": "x"}}, "non-negative number"),
    ({"joules": 1.0}, "unknown key 'energy.joules'"),
    ({"sources": {"typo_j": "x"}}, "energy.sources"),
])
def test_bad_energy_tables_are_one_line_errors(energy, fragment):
    with pytest.raises(SnnccError, match="chip profile") as error:
        chip_from_dict({**BASE, "energy": energy}, "test.yaml")
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_a_profile_without_energy_table_estimates_nothing():
    chip = chip_from_dict(BASE, "test.yaml")
    assert chip.energy is None and chip.as_dict()["energy"] is None
    assert estimate(chip, **ACTIVITY).energy_j is None
