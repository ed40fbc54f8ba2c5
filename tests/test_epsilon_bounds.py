"""Tests of attacks/epsilon_bounds.py: TF Privacy's numbers, Gaussian and null scores, validity."""
import numpy as np
import pytest
from scipy import optimize, stats

from attacks.epsilon_bounds import (CORRECTIONS, FORMS, bound_violations, epsilon_bound_at_threshold,
                                    epsilon_bound_table, epsilon_lower_bound, ratio_epsilon_bounds)
from attacks.evaluation import AttackOutputs
from attacks.held_out_fpr import held_out_threshold


def test_ratio_bounds_equal_tf_privacy_ratio_bound():
    # TF Privacy's RatioBound docstring (privacy_tests/epsilon_lower_bound.py): tp [100, 90], fp [10, 5],
    # 110 positives, 80 negatives, alpha 0.05 -> katz-log [4.45958661, 6.39712581]. Clopper-Pearson: the same
    # file run as a scratch oracle (commit 03035d5d of tensorflow/privacy, statsmodels 0.15.0) gave
    # [3.851339908916994, 5.242921513555431].
    tp, fp = np.array([100, 90]), np.array([10, 5])
    katz = np.exp(ratio_epsilon_bounds(tp, 110, fp, 80, beta=0.05, method="katz-log"))
    exact = np.exp(ratio_epsilon_bounds(tp, 110, fp, 80, beta=0.05, method="clopper-pearson"))
    np.testing.assert_allclose(katz, [4.45958661, 6.39712581], atol=1e-6)
    np.testing.assert_allclose(exact, [3.851339908916994, 5.242921513555431], atol=1e-6)


@pytest.mark.parametrize("method, expected", [("clopper-pearson", 1.8911824038908294),
                                              ("katz-log", 2.1371574159423528)])
def test_uncorrected_search_equals_tf_privacy_epsilon_lower_bound(method, expected):
    # Scratch oracle (not in the repository): TF Privacy's EpsilonLowerBound(pos, neg, alpha=0.05,
    # two_sided_threshold=False).compute_epsilon_lower_bound(method, k=1) on these arrays.
    rng = np.random.default_rng(2024)
    pos, neg = np.round(rng.normal(1.5, 1.0, 300), 2), np.round(rng.normal(0.0, 1.0, 400), 2)
    found = epsilon_lower_bound(pos, neg, delta=0.0, confidence=0.95, method=method, correction="none")
    assert found.epsilon == pytest.approx(expected, abs=1e-6)
    assert found.form == "TPR/FPR" and found.threshold == 1.91
    assert found.tpr == np.mean(pos > 1.91) and found.fpr == np.mean(neg > 1.91)


def _gdp_epsilon(mu: float, delta: float) -> float:
    """The exact epsilon at ``delta`` of the trade-off between N(mu, 1) members and N(0, 1) non-members."""
    curve = lambda eps: stats.norm.cdf(-eps / mu + mu / 2) - np.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2) - delta
    return optimize.brentq(curve, 0.0, 50.0)


@pytest.mark.parametrize("correction", CORRECTIONS)
@pytest.mark.parametrize("method", ["clopper-pearson", "katz-log"])
def test_gaussian_scores_bound_the_analytic_epsilon(method, correction):
    mu, delta, n = 2.0, 1e-5, 5000
    rng = np.random.default_rng(0)
    found = epsilon_lower_bound(rng.normal(mu, 1, n), rng.normal(0, 1, n), delta, 0.95, method, correction, seed=1)
    t = found.threshold
    p1, p0 = ((stats.norm.sf(t - mu), stats.norm.sf(t)) if found.form == "TPR/FPR"
              else (stats.norm.cdf(t), stats.norm.cdf(t - mu)))
    at_threshold = np.log((p1 - delta) / p0)                                    # this test's true epsilon
    tpr, fpr = (found.tpr, found.fpr) if found.form == "TPR/FPR" else (1 - found.fpr, 1 - found.tpr)
    assert 0 < found.epsilon <= at_threshold <= _gdp_epsilon(mu, delta)
    assert found.epsilon > at_threshold / 2                                     # the interval is not vacuous
    n1, n0 = (found.n_members, found.n_non_members) if found.form == "TPR/FPR" else (found.n_non_members, found.n_members)
    k1, k0 = round(tpr * n1), round(fpr * n0)       # the upper limit is minus the lower limit of log(p0 / p1)
    assert at_threshold <= -ratio_epsilon_bounds(np.array([k0]), n0, np.array([k1]), n1, beta=0.05)[0]


@pytest.mark.parametrize("correction", ["split", "union"])
def test_null_scores_give_no_bound(correction):
    rng = np.random.default_rng(3)
    for seed in range(5):
        found = epsilon_lower_bound(rng.normal(size=1000), rng.normal(size=1000), correction=correction, seed=seed)
        assert found.epsilon < 0.05


def test_bounds_are_valid_in_repeated_simulation():
    """Randomized response and the Laplace mechanism are eps0-DP: a bound above eps0 is a false claim,
    which the stated 95% confidence allows in at most 5% of the runs (plus binomial slack)."""
    eps0, n, runs = 1.0, 400, 200
    rng = np.random.default_rng(7)
    keep = np.exp(eps0) / (1 + np.exp(eps0))
    mechanisms = {"randomized response": lambda size, member: (rng.random(size) < (keep if member else 1 - keep)) * 1.0,
                  "laplace": lambda size, member: rng.laplace(float(member), 1 / eps0, size)}
    limit = 0.05 + 3 * np.sqrt(0.05 * 0.95 / runs)
    for name, draw in mechanisms.items():
        for correction in ("split", "union"):
            above = [epsilon_lower_bound(draw(n, True), draw(n, False), 1e-5, 0.95, correction=correction,
                                         seed=run).epsilon > eps0 for run in range(runs)]
            assert np.mean(above) <= limit, (name, correction, np.mean(above))


def test_larger_delta_and_confidence_lower_the_bound():
    rng = np.random.default_rng(1)
    members, non_members = rng.normal(2, 1, 2000), rng.normal(0, 1, 2000)
    base = epsilon_lower_bound(members, non_members, 1e-5, 0.95, correction="union").epsilon
    assert epsilon_lower_bound(members, non_members, 0.05, 0.95, correction="union").epsilon < base
    assert epsilon_lower_bound(members, non_members, 1e-5, 0.999, correction="union").epsilon < base
    assert epsilon_lower_bound(members, non_members, 1e-5, 0.95, correction="none").epsilon > base


def test_second_form_finds_low_scores_of_non_members():
    rng = np.random.default_rng(2)   # non-members sometimes score far below every member: TNR/FNR
    members, non_members = rng.normal(0, 1, 1000), np.r_[rng.normal(0, 1, 700), np.full(300, -10.0)]
    found = epsilon_lower_bound(members, non_members, correction="union")
    assert found.form == FORMS[1] and found.epsilon > 0.1


def test_bound_at_a_held_out_threshold():
    rng = np.random.default_rng(4)
    held_out, members, non_members = rng.normal(size=5000), rng.normal(2, 1, 1000), rng.normal(size=1000)
    cut = held_out_threshold(held_out, 0.01)
    found = epsilon_bound_at_threshold(members, non_members, cut)
    assert found.threshold == cut and found.form == "TPR/FPR"
    assert found.tpr == np.mean(members > cut) and found.fpr == np.mean(non_members > cut)
    assert 0 < found.epsilon < np.log(found.tpr / found.fpr)


def _outputs(scores):
    return AttackOutputs(np.asarray(scores), np.asarray(scores) > 0, np.ones(len(scores)))


def test_table_rows_columns_and_seed():
    rng = np.random.default_rng(5)
    members, original, noise = rng.normal(1.5, 1, 500), rng.normal(0, 1, 500), rng.normal(3, 1, 500)
    outputs = {"A": {"Members": _outputs(members), "Original": _outputs(original), "Noise": _outputs(noise)}}
    held = {"A": {"Held-out": rng.normal(size=2000), "Members": members, "Original": original, "Noise": noise}}
    table = epsilon_bound_table(outputs, held, seed=42)
    assert list(table["set"]) == ["Original", "Noise"] and list(table["attack"]) == ["A", "A"]
    assert {"epsilon", "threshold", "form", "TPR", "FPR", "epsilon@1%HeldOutFPR", "epsilon@0.1%HeldOutFPR",
            "TPR@1%HeldOutFPR", "FPR@0.1%HeldOutFPR", "method", "correction", "confidence", "delta"} <= set(table)
    original_row, noise_row = table.iloc[0], table.iloc[1]
    assert original_row["epsilon"] > 0 and noise_row["epsilon@1%HeldOutFPR"] == 0   # OOD scored higher than members
    assert table.equals(epsilon_bound_table(outputs, held, seed=42))
    assert not table.equals(epsilon_bound_table(outputs, held, seed=43))
    outputs["A"]["Held-out"] = _outputs(held["A"]["Held-out"])
    with_held_out = epsilon_bound_table(outputs, held, seed=42).set_index("set")
    assert np.isnan(with_held_out.loc["Held-out", "epsilon@1%HeldOutFPR"])   # it set the threshold
    del outputs["A"]["Held-out"]
    without = epsilon_bound_table(outputs, None, seed=42)
    assert without["epsilon@1%HeldOutFPR"].isna().all() and without["epsilon"].equals(table["epsilon"])


def test_violations_name_the_attack_and_the_bound():
    rng = np.random.default_rng(6)
    outputs = {"Strong": {"Members": _outputs(rng.normal(4, 1, 500)), "Original": _outputs(rng.normal(0, 1, 500))},
               "Null": {"Members": _outputs(rng.normal(0, 1, 500)), "Original": _outputs(rng.normal(0, 1, 500))}}
    table = epsilon_bound_table(outputs, None, seed=0)
    sentences = bound_violations(table, accountant_epsilon=1.0)
    assert len(sentences) == 1 and sentences[0].startswith("Strong: the epsilon lower bound over thresholds")
    assert "above the accountant's epsilon 1.000" in sentences[0]
    assert bound_violations(table, accountant_epsilon=50.0) == []
    with pytest.raises(ValueError, match="accountant_epsilon"):
        bound_violations(table, float("nan"))


@pytest.mark.parametrize("kwargs, message", [({"delta": 1.5}, "delta must be in"), ({"confidence": 1.0}, "confidence"),
                                             ({"method": "bailey"}, "unknown epsilon bound method"),
                                             ({"correction": "holm"}, "unknown threshold-search correction")])
def test_bad_options_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        epsilon_lower_bound(np.zeros(10), np.zeros(10), **kwargs)


def test_bad_scores_are_one_line_errors():
    with pytest.raises(ValueError, match="member_scores has NaN"):
        epsilon_lower_bound(np.array([np.nan, 1.0]), np.zeros(3))
    with pytest.raises(ValueError, match="non_member_scores must be a non-empty 1-D"):
        epsilon_lower_bound(np.zeros(3), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="at least 2 members"):
        epsilon_lower_bound(np.zeros(1), np.zeros(3))
