"""Bad inputs to the reference attacks on arrays: one-line errors naming the argument, no NumPy warning,
never silently finite scores (issue 18: rmia_scores' input checks)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from attacks.reference import lira_scores, rmia_scores


def rmia_inputs(n=6, z=4, k=4, seed=0) -> list:
    rng = np.random.default_rng(seed)
    softmax = lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)
    keys = rng.random((k, n))
    reference_in = keys < np.median(keys, axis=0, keepdims=True)
    return [softmax(rng.normal(size=(n, 3))), rng.integers(0, 3, n), softmax(rng.normal(size=(k, n, 3))),
            reference_in, softmax(rng.normal(size=(z, 3))), rng.integers(0, 3, z), softmax(rng.normal(size=(k, z, 3)))]


def one_line_error(call, match: str) -> str:
    """``call()`` raises a one-line ValueError matching ``match`` and emits no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=match) as info:
            call()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_population_with_another_number_of_models_blames_the_population_argument():
    inputs = rmia_inputs()
    inputs[6] = inputs[6][:3]
    message = one_line_error(lambda: rmia_scores(*inputs), r"^population_reference_probs: has 3 models but "
                                                           r"reference_probs has 4")
    assert "reference_in" not in message


def test_population_membership_of_the_wrong_shape_names_population_in():
    inputs = rmia_inputs()
    one_line_error(lambda: rmia_scores(*inputs, population_in=np.zeros((4, 3), bool)),
                   r"^population_in: membership matrix has shape \(4, 3\)")


# positions of the four probability arrays in rmia_inputs(), and their argument names
PROBABILITY_ARGUMENTS = [(0, "target_probs"), (2, "reference_probs"), (4, "population_target_probs"),
                         (6, "population_reference_probs")]


@pytest.mark.parametrize("position,name", PROBABILITY_ARGUMENTS)
def test_negative_probabilities_are_refused(position, name):
    inputs = rmia_inputs()
    inputs[position] = inputs[position].copy()
    inputs[position][..., 1, 0] = -0.1
    one_line_error(lambda: rmia_scores(*inputs), rf"^{name}: row 1( \(model 0\))? has negative values; RMIA "
                                                 r"needs probabilities \(apply a softmax to logits\)")


@pytest.mark.parametrize("position,name", PROBABILITY_ARGUMENTS)
def test_all_zero_probabilities_are_refused(position, name):
    inputs = rmia_inputs()
    inputs[position] = inputs[position].copy()
    inputs[position][..., 2, :] = 0.0
    one_line_error(lambda: rmia_scores(*inputs), rf"^{name}: row 2( \(model 0\))? is all zero")


@pytest.mark.parametrize("position,name", PROBABILITY_ARGUMENTS)
def test_probabilities_above_one_or_not_summing_to_one_are_refused(position, name):
    inputs = rmia_inputs()
    tripled = list(inputs)
    tripled[position] = inputs[position] * 3
    one_line_error(lambda: rmia_scores(*tripled), rf"^{name}: row 0( \(model 0\))? has values above 1")
    halved = list(inputs)
    halved[position] = inputs[position] * 0.5
    one_line_error(lambda: rmia_scores(*halved), rf"^{name}: row 0( \(model 0\))? sums to 0.5, expected 1")


def test_population_labels_of_the_wrong_length_name_population_labels():
    inputs = rmia_inputs()
    inputs[5] = inputs[5][:-1]
    one_line_error(lambda: rmia_scores(*inputs), r"^population_labels: expected integer class indices of shape")


@pytest.mark.parametrize("gamma", [np.inf, np.nan, 0.0, -1.0])
def test_gamma_must_be_finite_and_positive(gamma):
    one_line_error(lambda: rmia_scores(*rmia_inputs(), gamma=gamma),
                   r"^RMIA: gamma must be a finite positive number")


def test_zero_probability_with_a_equal_one_is_an_error_not_nan():
    inputs = rmia_inputs()
    for position in (0, 2):                   # Pr(x|target) = 0 and every reference model's Pr = 0
        inputs[position] = inputs[position].copy()
        inputs[position][..., 0, :] = [0.0, 0.5, 0.5]
    inputs[1] = inputs[1].copy()
    inputs[1][0] = 0
    one_line_error(lambda: rmia_scores(*inputs, a=1.0), r"^RMIA: sample 0 has Pr\(x\|theta\) = 0 and Pr\(x\) = 0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = rmia_scores(*inputs, a=0.3)           # a < 1: Pr(x) > 0, a defined score of 0
    assert scores[0] == 0.0 and np.isfinite(scores).all()


def test_lira_rejects_non_finite_logits_and_non_bool_membership():
    rng = np.random.default_rng(0)
    target, refs = rng.normal(size=(5, 3)), rng.normal(size=(4, 5, 3))
    reference_in = rng.random((4, 5)) < 0.5
    reference_in[:2, :], reference_in[2:, :] = True, False
    bad = refs.copy()
    bad[3, 2, 1] = np.nan
    labels = np.zeros(5, int)
    one_line_error(lambda: lira_scores(target, labels, bad, reference_in), r"^reference_logits: contains NaN or inf")
    one_line_error(lambda: lira_scores(target, labels, refs, reference_in.astype(int)),
                   r"^reference_in: expected a bool matrix")
