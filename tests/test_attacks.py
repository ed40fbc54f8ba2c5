"""Tests of the score-level attacks (attacks/threshold, entropy, salem, shokri, validation, factory)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attacks import (
    ATTACK_NAMES,
    ATTACKS,
    EntropyAttack,
    NotFittedError,
    SalemAttack,
    ShokriAttack,
    ThresholdAttack,
    build_attack,
    default_attack_names,
)
from attacks.entropy import categorical_entropy, grid_threshold, shannon_entropy
from attacks.evaluation import evaluate_attack
from attacks.salem import top_k_scores
from attacks.salem_training import EarlyStopper, SalemTraining, train_salem_model
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
    # Salem computes in float32 as the paper's attack model; the others keep the input's float64
    assert scores.shape == (60,) and scores.dtype == (np.float32 if name == "salem" else np.float64)
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
    assert ATTACK_NAMES == tuple(name for name, spec in ATTACKS.items() if spec.paper)
    assert ATTACK_NAMES == ("threshold", "salem", "entropy", "shokri")   # the paper's columns, in its order
    assert [build_attack(n).name for n in ATTACKS] == [spec.display for spec in ATTACKS.values()]
    assert len({spec.display for spec in ATTACKS.values()}) == len(ATTACKS)   # one CSV prefix each


def test_default_attacks_derive_from_the_traits():
    assert default_attack_names(0) == ATTACK_NAMES
    assert default_attack_names(4) == tuple(ATTACKS)
    assert [name for name, spec in ATTACKS.items() if spec.trained_per_class] == ["shokri"]


def test_build_attack_passes_options_and_ignores_case():
    attack = build_attack("Salem", k=2, seed=7)
    assert isinstance(attack, SalemAttack) and attack.k == 2 and attack.seed == 7
    assert "k=2" in repr(attack)


def test_build_attack_rejects_unknown_names():
    valid = ", ".join(ATTACKS)
    with pytest.raises(ValueError, match=rf"unknown attack 'no_such_attack'; valid choices: {valid}$"):
        build_attack("no_such_attack")


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
    almost = with_max([0.9, 0.6]) + 2e-5          # rows sum to 1 + 8e-5, inside SUM_ATOL = 1e-4
    attack = ThresholdAttack().fit(almost, with_max([0.5, 0.4]))
    assert attack.decision_threshold() == pytest.approx(0.6 + 2e-5)  # the rows were used as given
    assert attack.predict(with_max([0.95, 0.3])).tolist() == [True, False]
    with pytest.raises(ValueError, match="sums to"):  # 1 + 1.6e-4: outside it
        ThresholdAttack().fit(almost + 2e-5, with_max([0.5, 0.4]))


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
    attack = ShokriAttack(max_epochs=1).fit(GOOD, with_max([0.3, 0.4, 0.5]),
                                            member_labels=np.array([0.0, 1.0, 2.0]))
    assert attack.is_fitted
    as_ints = ShokriAttack(max_epochs=1).fit(GOOD, with_max([0.3, 0.4, 0.5]), member_labels=np.array([0, 1, 2]))
    np.testing.assert_array_equal(attack.score(GOOD, np.array([0.0, 1.0, 2.0])), as_ints.score(GOOD, np.array([0, 1, 2])))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k": 0}, r"k must be a positive integer, got 0"),
        ({"hidden": 2.5}, r"hidden must be a positive integer, got 2.5"),
        ({"lr": -1}, r"lr must be a positive number, got -1"),
        ({"min_diff": -1.0}, r"min_diff must be a number >= 0, got -1.0"),
        ({"max_epochs": 0}, r"max_epochs must be a positive integer, got 0"),
    ],
)
def test_bad_salem_options_fail_at_construction(options, message):
    with pytest.raises(ValueError, match=message):
        SalemAttack(**options)


# ---------------------------------------------------------------- threshold attack (the paper's rule)

def test_threshold_is_the_lowest_separating_member_and_ties_are_non_members():
    attack = ThresholdAttack().fit(with_max([0.9, 0.95, 0.99]), with_max([0.4, 0.5, 0.6]))
    assert attack.threshold_ == 0.9
    target = with_max([0.6, 0.89, 0.9, 0.97])
    # member iff max > threshold (the paper's strict rule): a score equal to it is a non-member
    np.testing.assert_array_equal(attack.predict(target), [False, False, False, True])
    np.testing.assert_array_equal(attack.score(target), [0.6, 0.89, 0.9, 0.97])


def test_threshold_equal_maxima_of_youden_j_take_the_first_point():
    # members 0.9 0.8 0.6 0.2, non-members 0.7 0.5 0.4 0.3: TPR - FPR = 0.5 exactly at 0.8 and at 0.6
    attack = ThresholdAttack().fit(with_max([0.9, 0.8, 0.6, 0.2]), with_max([0.7, 0.5, 0.4, 0.3]))
    assert attack.threshold_ == 0.8  # the first (highest) of the equal maxima


def test_threshold_ties_in_exact_youden_j_are_broken_in_floating_point():
    # members 0.7 0.8 0.9, non-members 0.75 0.3 0.2: J = 2/3 - 0 at 0.8 and 1 - 1/3 at 0.7, equal in
    # exact arithmetic; in floating point 1 - 1/3 = 0.6666666666666667 > 2/3 = 0.6666666666666666
    assert 1 - 1 / 3 > 2 / 3
    attack = ThresholdAttack().fit(with_max([0.7, 0.8, 0.9]), with_max([0.75, 0.3, 0.2]))
    assert attack.threshold_ == 0.7
    np.testing.assert_array_equal(attack.predict(with_max([0.7, 0.71])), [False, True])


def test_uninformative_threshold_is_finite_and_predicts_no_shadow_member():
    members, non_members = with_max([0.3, 0.4]), with_max([0.8, 0.9])
    attack = ThresholdAttack().fit(members, non_members)
    assert attack.threshold_ == pytest.approx(1.9)  # largest score + 1, as scikit-learn < 1.3
    assert not attack.predict(np.vstack([members, non_members])).any()


def test_threshold_keeps_float32_scores():
    members, non_members = with_max([0.9, 0.95]).astype(np.float32), with_max([0.5, 0.6]).astype(np.float32)
    attack = ThresholdAttack().fit(members, non_members)
    assert attack.threshold_ == float(np.float32(0.9))
    scores = attack.score(torch.from_numpy(members))
    assert scores.dtype == np.float32
    np.testing.assert_array_equal(attack.predict(members), [False, True])


# ---------------------------------------------------------------- entropy attack (the paper's rule)

EPS32 = np.finfo(np.float32).eps


def test_categorical_entropy_is_torchs_and_floors_saturated_float32_rows():
    saturated = np.array([[1.0, 0.0, 0.0], [1.0, 1e-30, 0.0]], dtype=np.float32)
    entropy = categorical_entropy(saturated)
    assert entropy.dtype == np.float32
    floor = -np.log(np.float32(1) - EPS32)  # torch clamps p to [eps, 1 - eps] inside the log
    np.testing.assert_array_equal(entropy, [floor, floor])
    assert 1.1e-7 < floor < 1.3e-7
    exact = shannon_entropy(saturated)  # not what the paper used
    assert exact[0] == 0 and exact[1] < 1e-27
    # float64 rows get float64's (much lower) floor
    assert 0 < categorical_entropy(saturated.astype(np.float64))[0] < 1e-15
    uniform = np.full((1, 4), 0.25, dtype=np.float32)
    np.testing.assert_allclose(categorical_entropy(uniform), [np.log(4)], rtol=1e-6)


def test_entropy_saturated_members_and_non_members_tie_at_the_floor():
    # members saturated but with a tiny second score, non-members exactly one-hot: exact entropies
    # would rank every non-member above every member (AUROC 0); the paper's float32 entropies tie
    members = np.array([[1.0, 1e-20, 0.0]] * 3, dtype=np.float32)
    non_members = np.array([[1.0, 0.0, 0.0]] * 3, dtype=np.float32)
    attack = EntropyAttack().fit(with_max([0.99, 0.98], 3), with_max([0.5, 0.4], 3))
    result = evaluate_attack(attack, members, non_members)
    assert result.auroc == 0.5
    assert result.recall == 1.0 and result.fpr == 1.0


def test_entropy_grid_threshold_differs_from_the_exact_optimum():
    # any theta in (0.10005, 0.1001] separates perfectly, but no point k / 9999 of the 10,000-point
    # grid on [0, 1] falls there; the first best grid point is 1 / 9999 (3 of 4 right)
    members, non_members = np.array([0.0, 0.10005]), np.array([0.1001, 1.0])
    theta = grid_threshold(members, non_members)
    assert theta == np.linspace(0.0, 1.0, 10_000)[1]
    assert (members < theta).sum() + (non_members >= theta).sum() == 3


def test_entropy_grid_counts_members_below_and_non_members_at_or_above():
    # with theta = the grid's last point (1.0), the non-member at 1.0 counts as right, the member
    # at 1.0 as wrong; the optimum is the first grid point above 0.5
    members, non_members = np.array([0.0, 0.5, 1.0]), np.array([0.6, 1.0])
    theta = grid_threshold(members, non_members)
    grid = np.linspace(0.0, 1.0, 10_000)
    assert theta == grid[grid > 0.5][0]


def test_entropy_grid_is_compared_in_the_entropies_float32():
    # NumPy 1 (the paper's) compared float32 entropies with a float64 grid point in float32. The
    # grid point 3000 / 9999 rounds down to the member's entropy e1, so "member < theta" fails
    # there, and the next grid point lies above the non-member's e2: no grid point separates.
    grid = np.linspace(0.0, 1.0, 10_000)
    e1 = np.float32(grid[3000])
    assert e1 < grid[3000]
    e2 = np.nextafter(e1, np.float32(1))
    members, non_members = np.array([0.0, e1], dtype=np.float32), np.array([e2, 1.0], dtype=np.float32)
    theta = grid_threshold(members, non_members)
    assert theta.dtype == np.float32
    assert theta == np.float32(grid[1])  # 3 of 4 right; exact float64 comparisons would give grid[3000]
    assert (members.astype(np.float64) < grid[3000]).sum() + (non_members >= grid[3000]).sum() == 4


def test_entropy_attack_decides_strictly_below_the_threshold():
    members, non_members = with_max([0.99, 0.95, 0.9]), with_max([0.5, 0.4])
    attack = EntropyAttack().fit(members, non_members)
    h = categorical_entropy(np.vstack([members, non_members]))
    expected = np.linspace(h.min(), h.max(), 10_000)
    correct = [(h[:3] < t).sum() + (h[3:] >= t).sum() for t in expected]
    assert attack.threshold_ == expected[int(np.argmax(correct))]
    np.testing.assert_array_equal(attack.score(members), -categorical_entropy(members))
    np.testing.assert_array_equal(attack.predict(members), categorical_entropy(members) < attack.threshold_)
    assert not attack.decide(np.array([-attack.threshold_]))[0]  # H == theta is a non-member
    assert attack.predict(members).all() and not attack.predict(non_members).any()


def test_entropy_keeps_float32():
    members = with_max([0.99, 0.97]).astype(np.float32)
    attack = EntropyAttack().fit(members, with_max([0.4, 0.3]).astype(np.float32))
    assert attack.score(members).dtype == np.float32
    assert attack.threshold_ == float(np.float32(attack.threshold_))
    scores = attack.score(with_max([0.3, 0.6, 0.9, 1.0]))
    assert np.all(np.diff(scores) > 0)


# ---------------------------------------------------------------- Salem attack

def test_top_k_scores_are_sorted_descending():
    probs = np.array([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
    np.testing.assert_array_equal(top_k_scores(probs, 2), [[0.6, 0.3], [0.6, 0.2]])


def stop_epoch(losses, **options):
    """1-based epoch at which ``EarlyStopper(**options)`` says stop on ``losses``, or None."""
    stopper = EarlyStopper(**options)
    for epoch, loss in enumerate(losses, start=1):
        if stopper.should_stop(loss):
            return epoch
    return None


def test_early_stopper_defaults_are_the_papers():
    stopper = EarlyStopper()
    assert (stopper.window, stopper.min_diff) == (15, 5e-4)


def test_early_stopper_stops_window_epochs_after_the_last_real_improvement():
    # improves by 1e-3 for 10 epochs (each counts: >= 5e-4), then by 1e-5 per epoch: the best is
    # never beaten by 5e-4 again (the rule compares with the best loss, not the previous one)
    losses = [1 - 1e-3 * i for i in range(10)] + [0.991 - 1e-5 * i for i in range(1, 40)]
    assert stop_epoch(losses) == 10 + 15


def test_early_stopper_by_hand_with_a_small_window():
    # window 3, min_diff 0.1: 0.95 is no improvement on 1.0, 0.85 is; then three flat epochs
    assert stop_epoch([1.0, 0.95, 0.85, 0.8, 0.8, 0.8, 0.8], window=3, min_diff=0.1) == 6
    # a loss that keeps improving by more than min_diff never stops
    assert stop_epoch([1.0 - 0.2 * i for i in range(5)], window=1, min_diff=0.125) is None


def test_early_stopper_stop_test_comes_before_the_improvement_test():
    # best 1.0; 0.75 improves by exactly min_diff, but "best <= loss + min_diff" is checked first
    assert stop_epoch([1.0, 0.75], window=1, min_diff=0.25) == 2
    assert stop_epoch([1.0, 0.7], window=1, min_diff=0.25) is None  # a larger improvement goes on


def test_early_stopper_can_stop_on_a_worse_loss_only_after_the_window():
    assert stop_epoch([1.0] + [2.0] * 20, window=15, min_diff=5e-4) == 16


def test_salem_training_stops_by_the_papers_rule():
    rng = np.random.default_rng(0)
    features = np.sort(rng.dirichlet(np.full(5, 0.5), size=80), axis=1)[:, ::-1][:, :3]
    targets = (rng.random(80) < 0.5).astype(float)
    model, losses = train_salem_model(features, targets, SalemTraining(window=4, min_diff=1e-3))
    assert stop_epoch(losses, window=4, min_diff=1e-3) == len(losses)  # stopped exactly there
    assert next(model.parameters()).dtype == torch.float32
    capped = train_salem_model(features, targets, SalemTraining(window=4, min_diff=0.0, max_epochs=3))[1]
    assert len(capped) == 3
    np.testing.assert_array_equal(capped, losses[:3])  # same seed, same first epochs


def test_salem_defaults_are_the_papers():
    attack = SalemAttack()
    assert (attack.k, attack.hidden, attack.lr, attack.batch_size) == (3, 64, 0.01, 16)
    assert (attack.window, attack.min_diff, attack.max_epochs) == (15, 5e-4, None)


def test_salem_scores_in_float32_and_decides_at_or_above_one_half():
    attack = SalemAttack(max_epochs=2).fit(with_max([0.9, 0.95, 0.8]), with_max([0.4, 0.5, 0.6]))
    assert attack.score(with_max([0.9])).dtype == np.float32
    just_below = np.nextafter(np.float32(0.5), np.float32(0))
    np.testing.assert_array_equal(attack.decide(np.array([0.5, just_below])), [True, False])


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


def test_salem_uses_every_class_when_k_exceeds_them_and_says_so(caplog):
    members, non_members = with_max([0.9, 0.95, 0.8], n_classes=2), with_max([0.6, 0.55, 0.7], n_classes=2)
    with caplog.at_level("WARNING", logger="attacks.salem"):
        attack = SalemAttack(max_epochs=2).fit(members, non_members)
    assert attack.k == 3 and attack.k_ == 2 and len(attack.notes) == 1
    assert "k=3 top scores asked, the target has 2 classes" in attack.notes[0] and attack.notes[0] in caplog.text
    assert attack.score(members).shape == (3,)
    assert SalemAttack(max_epochs=2).fit(GOOD, with_max([0.4, 0.5])).notes == ()   # C >= k: nothing changes


def test_failed_refit_leaves_the_attack_unfitted(monkeypatch):
    attack = SalemAttack(k=3, max_epochs=2).fit(GOOD, with_max([0.4, 0.5]))

    def fails(*args):
        raise ValueError("training failed")

    monkeypatch.setattr("attacks.salem.train_salem_model", fails)
    with pytest.raises(ValueError, match="training failed"):
        attack.fit(GOOD, with_max([0.4, 0.5]))
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
