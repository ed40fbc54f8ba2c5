"""The reference attacks' null test has a stated false-alarm rate: fair attacks on random splits at
the default size (200 vs 200 rows, 6 attacks) flag any attack in at most 1% of runs."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from engine.reference_checks import (NULL_ALPHA, mann_whitney_p, null_p_threshold, null_power_sentence,
                                                  null_test_passed, null_test_problems, null_test_table)


def fair_runs(runs: int, attacks: int = 6, rows: int = 200, seed: int = 0) -> np.ndarray:
    """Null scores ``(runs, attacks, 2 * rows)`` of fair, correlated attacks (they share half of
    their signal, as attacks on one model's outputs do), rows in random order."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(runs, 1, 2 * rows))
    scores = 0.5 * shared + rng.normal(size=(runs, attacks, 2 * rows))
    order = np.argsort(rng.random((runs, 1, 2 * rows)), axis=2)
    return np.take_along_axis(scores, np.broadcast_to(order, scores.shape), axis=2)


def test_fair_attacks_on_random_splits_flag_at_most_one_run_in_a_hundred():
    scores = fair_runs(2_000)
    p = mannwhitneyu(scores[..., :200], scores[..., 200:], axis=-1, method="asymptotic").pvalue
    assert p[0, 0] == pytest.approx(mann_whitney_p(scores[0, 0, :200], scores[0, 0, 200:]))
    flagged = (p < null_p_threshold(6)).any(axis=1).mean()
    assert flagged <= NULL_ALPHA
    assert (p < 0.05).mean() == pytest.approx(0.05, abs=0.01)        # the p-values are calibrated


def test_the_table_applies_the_rule_and_names_the_flagged_attack():
    scores = fair_runs(1, attacks=5, seed=1)[0]
    null = {f"A{i}": {"Members": scores[i, :200], "Original": scores[i, 200:]} for i in range(5)}
    rng = np.random.default_rng(2)
    null["Leaky"] = {"Members": rng.normal(0.45, 1, 200), "Original": rng.normal(0, 1, 200)}   # AUROC ~0.62
    table = null_test_table(null, null, ["Original"])
    (problem,) = null_test_problems(table)
    assert problem.startswith("**Leaky**: null AUROC 0.6") and "/6: a measurement problem" in problem
    assert "95% interval [" in problem
    assert not null_test_passed(table, "Leaky") and null_test_passed(table, "A0") and null_test_passed(None, "A0")


def test_power_sentence_states_the_band_and_the_power_against_the_former_layout():
    sentence = null_power_sentence(6)
    assert "0.5 +- 0.091" in sentence and "8%-22% of runs" in sentence and "0.1 in 62%" in sentence
