"""Tests of the score-level attacks (attacks/threshold, entropy, salem, shokri, validation, factory)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attacks import (
    ATTACK_NAMES,
    EntropyAttack,
    NotFittedError,
    SalemAttack,
    ShokriAttack,
    ThresholdAttack,
    build_attack,
)
from attacks.entropy import shannon_entropy
from attacks.salem import top_k_scores
from attacks.shokri import assign_classes

FAST = {"salem": {"max_epochs": 10}, "shokri": {"max_epochs": 10}}  # enough to exercise the API


@pytest.fixture(autouse=True)
def no_global_state_change():
    """Attacks must not move the global torch / NumPy generators or torch's thread count."""
    torch_state, np_state, threads = torch.get_rng_state(), np.random.get_state(), torch.get_num_threads()
    yield
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert torch.get_num_threads() == threads


def with_max(maxima, n_classes=4):
    """Probability rows whose largest entry is ``maxima[i]``; the rest is spread evenly."""
    maxima = np.asarray(maxima, dtype=np.float64)
    rest = (1 - maxima) / (n_classes - 1)
    probs = np.repeat(rest[:, None], n_classes, axis=1)
    probs[:, 0] = maxima
    return probs


def random_probs(rng, n, n_classes, temperature):
    logits = rng.normal(size=(n, n_classes)) * temperature
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.fixture
def shadow():
    rng = np.random.default_rng(0)
    members, non_members = random_probs(rng, 60, 5, 4.0), random_probs(rng, 60, 5, 1.0)
    return members, non_members, members.argmax(axis=1), rng.integers(0, 5, 60)


# ---------------------------------------------------------------- lifecycle, shared by all attacks

@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_score_and_predict_before_fit_raise(name, shadow):
    attack = build_attack(name, **FAST.get(name, {}))
    for method in (attack.score, attack.predict):
        with pytest.raises(NotFittedError, match=r"is not fitted; call fit\(.*\) first"):
            method(shadow[0])


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_fit_returns_self_and_outputs_have_shapes(name, shadow):
    members, non_members, m_labels, n_labels = shadow
    attack = build_attack(name, **FAST.get(name, {}))
    assert attack.fit(members, non_members, m_labels, n_labels) is attack
    scores, decisions = attack.score(non_members, n_labels), attack.predict(non_members, n_labels)
    assert scores.shape == (60,) and scores.dtype == np.float64
    assert decisions.shape == (60,) and decisions.dtype == bool


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_torch_tensors_give_the_same_answers(name, shadow):
    members, non_members, m_labels, n_labels = shadow
    from_numpy = build_attack(name, **FAST.get(name, {})).fit(members, non_members, m_labels, n_labels)
    from_torch = build_attack(name, **FAST.get(name, {})).fit(
        torch.from_numpy(members), torch.from_numpy(non_members),
        torch.from_numpy(m_labels), torch.from_numpy(n_labels),
    )
    np.testing.assert_array_equal(
        from_torch.score(torch.from_numpy(members)), from_numpy.score(members)
    )
    float32 = torch.from_numpy(members).float()
    assert from_torch.predict(float32).shape == (60,)


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_fitting_is_deterministic(name, shadow):
    first = build_attack(name, **FAST.get(name, {})).fit(*shadow).score(shadow[1])
    second = build_attack(name, **FAST.get(name, {})).fit(*shadow).score(shadow[1])
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_score_rejects_a_different_number_of_classes(name, shadow):
    attack = build_attack(name, **FAST.get(name, {})).fit(shadow[0], shadow[1])
    with pytest.raises(ValueError, match=r"probs: has 4 classes but .* has 5"):
        attack.score(with_max([0.5, 0.7], n_classes=4))


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_labels_must_match_probs_in_length(name, shadow):
    attack = build_attack(name, **FAST.get(name, {})).fit(shadow[0], shadow[1])
    with pytest.raises(ValueError, match=r"labels: has 3 entries but probs has 60 rows"):
        attack.predict(shadow[0], np.array([0, 1, 2]))


def test_attack_names_are_csv_prefixes_in_paper_order():
    assert ATTACK_NAMES == ("threshold", "salem", "entropy", "shokri")
    assert [type(build_attack(n)).name for n in ATTACK_NAMES] == ["Threshold", "Salem", "Entropy", "Shokri"]


def test_build_attack_passes_options_and_ignores_case():
    attack = build_attack("Salem", k=2, seed=7)
    assert isinstance(attack, SalemAttack) and attack.k == 2 and attack.seed == 7
    assert "k=2" in repr(attack)


def test_build_attack_rejects_unknown_names():
    valid = "threshold, salem, entropy, shokri, loss, modified_entropy"
    with pytest.raises(ValueError, match=rf"unknown attack 'lira'; valid choices: {valid}$"):
        build_attack("lira")


# ---------------------------------------------------------------- input validation

GOOD = with_max([0.9, 0.8, 0.7])
NOT_LOGITS = r" \(pass probabilities, not logits\)"


def good_with(row, col, value):
    probs = GOOD.copy()
    probs[row, col] = value
    return probs


@pytest.mark.parametrize(
    ("member_probs", "message"),
    [
        (np.array([0.5, 0.5]), r"member_probs: expected a 2-D array of shape \(N, C\), got shape \(2,\)"),
        (np.zeros((0, 4)), r"member_probs: is empty \(shape \(0, 4\)\)"),
        (good_with(1, 2, np.nan), r"member_probs: non-finite value nan at row 1, column 2"),
        (good_with(2, 0, np.inf), r"member_probs: non-finite value inf at row 2, column 0"),
        (np.array([[0.6, 0.4], [1.2, -0.2]]),
         r"member_probs: negative value -0.2 at row 1, column 1" + NOT_LOGITS),
        (np.array([[0.6, 0.4], [0.6, 0.33]]), r"member_probs: row 1 sums to 0.93, expected 1" + NOT_LOGITS),
        (np.array([["a", "b"]]), r"member_probs: expected a numeric array"),
        ([[0.5, 0.5], [1.0]], r"member_probs: cannot be read as an array"),
    ],
    ids=["1-D", "empty", "nan", "inf", "negative", "row-sum", "strings", "ragged"],
)
def test_bad_probabilities_are_named(member_probs, message):
    with pytest.raises(ValueError, match=message):
        ThresholdAttack().fit(member_probs, with_max([0.5, 0.6], n_classes=2))


def test_row_sum_error_counts_other_bad_rows():
    logits = np.array([[2.0, 1.0], [0.5, 0.5], [3.0, 1.0]])
    message = r"non_member_probs: row 0 sums to 3, expected 1 \(and 1 other rows\)" + NOT_LOGITS
    with pytest.raises(ValueError, match=message):
        ThresholdAttack().fit(with_max([0.9], n_classes=2), logits)


def test_sums_within_tolerance_are_accepted():
    almost = with_max([0.9, 0.6]) + 2e-5
    ThresholdAttack().fit(almost, with_max([0.5, 0.4]))


def test_fit_rejects_members_and_non_members_with_different_classes():
    with pytest.raises(ValueError, match=r"non_member_probs: has 3 classes but member_probs has 4"):
        EntropyAttack().fit(with_max([0.9]), with_max([0.5], n_classes=3))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, 1]), r"member_labels: has 2 entries but member_probs has 3 rows"),
        (np.array([[0, 1, 2]]),
         r"member_labels: expected a 1-D array of class indices, got shape \(1, 3\)"),
        (np.array([0.0, 1.5, 2.0]), r"member_labels: expected integer class indices, got dtype float64"),
    ],
)
def test_bad_labels_are_named(labels, message):
    with pytest.raises(ValueError, match=message):
        ShokriAttack(max_epochs=1).fit(GOOD, GOOD, member_labels=labels)


def test_integral_float_labels_are_accepted():
    ShokriAttack(max_epochs=1).fit(GOOD, with_max([0.3, 0.4, 0.5]), member_labels=np.array([0.0, 1.0, 2.0]))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k": 0}, r"k must be a positive integer, got 0"),
        ({"hidden": 2.5}, r"hidden must be a positive integer, got 2.5"),
        ({"lr": -1}, r"lr must be a positive number, got -1"),
        ({"val_fraction": 1.0}, r"val_fraction must be a number in \[0, 1\), got 1.0"),
    ],
)
def test_bad_salem_options_fail_at_construction(options, message):
    with pytest.raises(ValueError, match=message):
        SalemAttack(**options)


# ---------------------------------------------------------------- threshold attack

def test_threshold_separates_separable_maxima_at_the_lowest_member():
    attack = ThresholdAttack().fit(with_max([0.9, 0.95, 0.99]), with_max([0.4, 0.5, 0.6]))
    assert attack.threshold_ == 0.9
    target = with_max([0.6, 0.89, 0.9, 0.97])
    np.testing.assert_array_equal(attack.predict(target), [False, False, True, True])
    np.testing.assert_array_equal(attack.score(target), [0.6, 0.89, 0.9, 0.97])


def test_threshold_maximises_tpr_minus_fpr():
    # members 0.7, 0.8, 0.9 ; non-members 0.75, 0.3, 0.2: J = 2/3 - 0 at 0.8, 1 - 1/3 at 0.7
    attack = ThresholdAttack().fit(with_max([0.7, 0.8, 0.9]), with_max([0.75, 0.3, 0.2]))
    assert attack.threshold_ == 0.8  # the first (highest) of the tied optima


def test_uninformative_threshold_is_finite_and_predicts_no_shadow_member():
    members, non_members = with_max([0.3, 0.4]), with_max([0.8, 0.9])
    attack = ThresholdAttack().fit(members, non_members)
    assert np.isfinite(attack.threshold_) and attack.threshold_ > 0.9
    assert not attack.predict(np.vstack([members, non_members])).any()


# ---------------------------------------------------------------- entropy attack

def test_shannon_entropy_handles_zeros_and_orders_confidence():
    probs = np.array([[1.0, 0.0, 0.0, 0.0], [0.7, 0.3, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    entropy = shannon_entropy(probs)
    np.testing.assert_allclose(entropy, [0.0, -(0.7 * np.log(0.7) + 0.3 * np.log(0.3)), np.log(4)])
    assert np.all(np.diff(entropy) > 0)


def test_entropy_scores_confident_vectors_higher():
    members, non_members = with_max([0.99, 0.97]), with_max([0.4, 0.3])
    attack = EntropyAttack().fit(members, non_members)
    np.testing.assert_array_equal(attack.score(members), -shannon_entropy(members))
    scores = attack.score(with_max([0.3, 0.6, 0.9, 1.0]))
    assert np.all(np.diff(scores) > 0)


def test_entropy_threshold_is_the_most_uncertain_member_when_separable():
    members, non_members = with_max([0.99, 0.95, 0.9]), with_max([0.5, 0.4])
    attack = EntropyAttack().fit(members, non_members)
    assert attack.threshold_ == shannon_entropy(members).max()
    assert attack.predict(members).all() and not attack.predict(non_members).any()


def test_entropy_threshold_maximises_shadow_accuracy():
    rng = np.random.default_rng(3)
    members, non_members = random_probs(rng, 40, 3, 2.0), random_probs(rng, 70, 3, 1.0)
    attack = EntropyAttack().fit(members, non_members)
    h_m, h_n = shannon_entropy(members), shannon_entropy(non_members)

    def correct(t):
        return (h_m <= t).sum() + (h_n > t).sum()

    best = max(correct(t) for t in np.concatenate([h_m, h_n, [-1.0]]))
    assert correct(attack.threshold_) == best


# ---------------------------------------------------------------- Salem attack

def test_top_k_scores_are_sorted_descending():
    probs = np.array([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
    np.testing.assert_array_equal(top_k_scores(probs, 2), [[0.6, 0.3], [0.6, 0.2]])


def test_salem_separates_perfectly_separable_top_k():
    rng = np.random.default_rng(1)
    members = with_max(rng.uniform(0.95, 1.0, 40), n_classes=5)
    non_members = with_max(rng.uniform(0.3, 0.5, 40), n_classes=5)
    attack = SalemAttack(batch_size=16).fit(members, non_members)
    assert attack.predict(members).all() and not attack.predict(non_members).any()
    assert np.all((attack.score(members) > 0.5) & (attack.score(members) <= 1))


def test_salem_seed_changes_the_model():
    members, non_members = with_max([0.9, 0.95, 0.8]), with_max([0.4, 0.5, 0.6])
    scores = [SalemAttack(seed=s, max_epochs=2).fit(members, non_members).score(members) for s in (0, 1)]
    assert not np.array_equal(*scores)


def test_salem_rejects_k_larger_than_the_number_of_classes():
    with pytest.raises(ValueError, match=r"k=3 exceeds the number of classes \(2\)"):
        SalemAttack().fit(with_max([0.9], n_classes=2), with_max([0.6], n_classes=2))


def test_failed_refit_leaves_the_attack_unfitted():
    attack = SalemAttack(k=3, max_epochs=2).fit(GOOD, with_max([0.4, 0.5]))
    with pytest.raises(ValueError, match="exceeds"):
        attack.fit(with_max([0.9], n_classes=2), with_max([0.6], n_classes=2))
    with pytest.raises(NotFittedError):
        attack.score(GOOD)


# ---------------------------------------------------------------- Shokri attack

def opposite_classes(rng, n=30):
    """Class 0: members confident, non-members not. Class 1: the reverse. A global model cannot
    separate these; one model per class can."""
    def rows(cls, top):
        probs = np.full((n, 3), 0.0)
        probs[:, cls] = top + rng.uniform(-0.02, 0.02, n)
        probs[:, 2] = 1 - probs[:, cls]
        return probs

    members = np.vstack([rows(0, 0.9), rows(1, 0.6)])
    non_members = np.vstack([rows(0, 0.6), rows(1, 0.9)])
    labels = np.repeat([0, 1], n)
    return members, non_members, labels


def test_assign_classes_uses_labels_in_range_else_predictions():
    probs = np.array([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    classes, from_label = assign_classes(probs, np.array([0, -1, 3]))
    np.testing.assert_array_equal(classes, [0, 0, 2])
    np.testing.assert_array_equal(from_label, [True, False, False])
    np.testing.assert_array_equal(assign_classes(probs, None)[0], [1, 0, 2])


def test_shokri_learns_one_model_per_class():
    members, non_members, labels = opposite_classes(np.random.default_rng(0))
    attack = ShokriAttack(batch_size=64, max_epochs=100, val_fraction=0)  # full batch, no early stop
    attack.fit(members, non_members, labels, labels)
    assert sorted(attack.models_) == [0, 1]
    assert attack.fallback_classes_ == (2,) and attack.global_model_ is not None
    assert attack.class_source == "label"
    assert attack.predict(members, labels).mean() > 0.9
    assert attack.predict(non_members, labels).mean() < 0.1


def test_shokri_class_source_follows_the_labels_given():
    members, non_members, labels = opposite_classes(np.random.default_rng(0), n=10)
    attack = ShokriAttack(max_epochs=5).fit(members, non_members, labels, labels)
    # confident on class 2 but labelled 0: the label picks the class-0 model, the argmax the fallback
    target = np.array([[0.15, 0.05, 0.8]])
    by_label = attack.score(target, np.array([0]))
    assert attack.class_source == "label"
    by_prediction = attack.score(target)
    assert attack.class_source == "predicted"
    assert by_label[0] != by_prediction[0]
    np.testing.assert_array_equal(attack.score(target, np.array([-1])), by_prediction)
    assert attack.class_source == "predicted"
    attack.predict(np.vstack([target, target]), np.array([0, -1]))
    assert attack.class_source == "mixed"


def test_shokri_falls_back_to_a_global_model_for_classes_without_both_memberships():
    members = with_max([0.9, 0.95, 0.97, 0.92])  # argmax class 0 throughout
    non_members = with_max([0.5, 0.4, 0.45, 0.3])
    labels = np.array([0, 0, 1, 1])
    attack = ShokriAttack(max_epochs=3).fit(members, non_members, labels, np.array([0, 0, 3, 3]))
    # class 0: both; class 1: members only; class 3: non-members only; class 2: nothing
    assert list(attack.models_) == [0]
    assert attack.fallback_classes_ == (1, 2, 3)
    assert attack.score(with_max([0.9, 0.9]), np.array([1, 2])).shape == (2,)


def test_shokri_batched_scoring_equals_each_class_model():
    from attacks.mlp import predict_proba

    rng = np.random.default_rng(3)
    members = rng.dirichlet(np.full(4, 0.3), size=120)
    non_members = rng.dirichlet(np.full(4, 1.0), size=120)
    labels_m, labels_n = rng.integers(0, 4, 120), rng.integers(0, 4, 120)
    attack = ShokriAttack(seed=1).fit(members, non_members, labels_m, labels_n)
    probs = np.concatenate([members, non_members])
    labels = np.concatenate([labels_m, labels_n])
    expected = np.empty(len(probs))
    for c in range(4):
        model = attack.models_.get(c, attack.global_model_)
        expected[labels == c] = predict_proba(model, probs[labels == c])
    np.testing.assert_allclose(attack.score(probs, labels), expected, rtol=0, atol=1e-12)
