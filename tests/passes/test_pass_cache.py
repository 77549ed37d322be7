"""The pass cache (snncc.passes.PassCache): leading passes shared by runs that repeat them."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import raw_samples, tiny_mlp_graph

from snncc.passes import PassCache, PassContext, run_passes


@pytest.fixture
def counted(monkeypatch):
    """How often each pass ran."""
    from snncc import passes

    calls: dict[str, int] = {}
    original = passes.get_pass

    def get_pass(name):
        function = original(name)

        def run(graph, context):
            calls[name] = calls.get(name, 0) + 1
            return function(graph, context)

        return run

    monkeypatch.setattr(passes, "get_pass", get_pass)
    return calls


def context(sparsity: float, percentile: float = 99.9, timesteps: int = 8,
            samples: np.ndarray | None = None) -> PassContext:
    calibration = raw_samples(tiny_mlp_graph()) if samples is None else samples
    return PassContext(calibration=calibration, timesteps=timesteps,
                       options={"convert": {"threshold_method": "percentile",
                                            "percentile": percentile},
                                "prune": {"sparsity": sparsity}})


def run(cache: PassCache | None, **options):
    return run_passes(tiny_mlp_graph(), ["convert", "prune"], context(**options), cache)


def summary(outcome) -> tuple:
    graph, results = outcome
    return graph.fingerprint(), [(name, result.changed, repr(result.info),
                                  result.graph.fingerprint()) for name, result in results]


def test_points_differing_in_the_last_pass_convert_once_with_the_results_of_no_cache(counted):
    cache = PassCache()
    first, second = run(cache, sparsity=0.5), run(cache, sparsity=0.8)
    assert counted == {"convert": 1, "prune": 2} and cache.hits == 1
    assert summary(first) == summary(run(None, sparsity=0.5))
    assert summary(second) == summary(run(None, sparsity=0.8))


@pytest.mark.parametrize("change", [
    {"percentile": 99.0}, {"timesteps": 16},
    {"samples": raw_samples(tiny_mlp_graph(), seed=2)},
])
def test_another_option_t_or_calibration_of_the_leading_passes_runs_them_again(counted, change):
    cache = PassCache()
    run(cache, sparsity=0.5)
    run(cache, sparsity=0.5, **change)
    assert counted["convert"] == 2 and cache.hits == 0


def test_another_model_runs_the_passes_again(counted):
    cache = PassCache()
    run_passes(tiny_mlp_graph(seed=0), ["convert", "prune"], context(0.5), cache)
    run_passes(tiny_mlp_graph(seed=1), ["convert", "prune"], context(0.5), cache)
    assert counted["convert"] == 2


def test_a_caller_changing_its_results_leaves_the_cache_as_it_was():
    cache = PassCache()
    graph, results = run(cache, sparsity=0.5)
    results[0][1].graph.nodes["fc1"].weight[:] = 0
    results[0][1].info.clear()
    assert summary(run(cache, sparsity=0.5)) == summary(run(None, sparsity=0.5))


def test_a_whole_pipeline_is_never_stored_and_the_oldest_entry_goes_first(counted):
    cache = PassCache(size=2)
    run_passes(tiny_mlp_graph(), ["convert"], context(0.5), cache)
    run_passes(tiny_mlp_graph(), ["convert"], context(0.5), cache)
    assert counted["convert"] == 2 and cache.hits == 0
    for percentile in (99.0, 99.5, 99.9):
        run(cache, sparsity=0.5, percentile=percentile)
    run(cache, sparsity=0.5, percentile=99.9)
    run(cache, sparsity=0.5, percentile=99.0)  # dropped: the cache holds two entries
    assert counted["convert"] == 2 + 4 and cache.hits == 1
