"""Tests of attacks/reference.py (LiRA, RMIA), attacks/loss.py and attacks/modified_entropy.py."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from attacks import ATTACKS, LossAttack, ModifiedEntropyAttack, NotFittedError, ReferenceAttack, build_attack
from attacks.loss import cross_entropy
from attacks.modified_entropy import modified_entropy
from attacks.reference import ReferenceSignals, lira_scores, logit_scaled_confidence, rmia_scores
from attacks.youden import youden_threshold


def balanced_membership(k: int, n: int, rng) -> np.ndarray:
    """Each sample IN for exactly k/2 of k models."""
    keys = rng.random((k, n))
    return keys < np.median(keys, axis=0, keepdims=True)


# ------------------------------------------------------------------ logit-scaled confidence

def test_logit_scaled_confidence_exact_where_float32_softmax_saturates():
    logits = np.array([[40.0, 0.0, 0.0], [0.0, 120.0, 3.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    labels = np.array([0, 0, 2])
    probs32 = np.exp(logits - logits.max(1, keepdims=True))
    probs32 /= probs32.sum(1, keepdims=True)
    assert probs32[0, 0] == 1.0 and probs32[1, 0] == 0.0        # float32 softmax saturates both ways
    phi = logit_scaled_confidence(logits, labels)
    assert np.isfinite(phi).all()
    assert phi[0] == pytest.approx(40.0 - np.log(2.0), abs=1e-12)
    assert phi[1] == pytest.approx(0.0 - (120.0 + np.log1p(np.exp(3.0 - 120.0))), abs=1e-12)
    p = np.exp(np.float64([1, 2, 3]) - np.log(np.exp([1.0, 2, 3]).sum()))
    assert phi[2] == pytest.approx(np.log(p[2]) - np.log(p[0] + p[1]), rel=1e-12)


def test_logit_scaled_confidence_of_reference_stack():
    logits = np.random.default_rng(0).normal(size=(3, 5, 4))
    labels = np.array([0, 1, 2, 3, 0])
    stacked = logit_scaled_confidence(logits, labels)
    assert stacked.shape == (3, 5)
    np.testing.assert_allclose(stacked[1], logit_scaled_confidence(logits[1], labels))


# ------------------------------------------------------------------ LiRA on Gaussian signals

def gaussian_world(n=20_000, k=128, shift=1.0, sd=1.0, seed=0, outside_non_members=False):
    """Per-sample OUT mean mu_i ~ N(0, 2^2); OUT ~ N(mu_i, sd^2), IN ~ N(mu_i + shift, sd^2).

    Signals become 2-class logits [phi, 0] with label 0, so the logit-scaled confidence is phi.
    The optimal test's AUROC is Phi(shift / (sd sqrt 2)).
    """
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 2, n)
    reference_in = balanced_membership(k, n, rng)
    is_member = rng.random(n) < 0.5
    if outside_non_members:   # every second non-member is in no reference model's training set
        reference_in &= ~(~is_member & (np.arange(n) % 2 == 0))[None, :]
    ref_phi = mu + shift * reference_in + rng.normal(0, sd, (k, n))
    target_phi = mu + shift * is_member + rng.normal(0, sd, n)
    as_logits = lambda phi: np.stack([phi, np.zeros_like(phi)], axis=-1)
    analytic = norm.cdf(shift / (sd * np.sqrt(2)))
    return as_logits(target_phi), np.zeros(n, dtype=int), as_logits(ref_phi), reference_in, is_member, analytic


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("fixed_variance", [True, False])
def test_lira_reaches_the_optimal_auroc_on_gaussian_signals(online, fixed_variance):
    target, labels, refs, reference_in, is_member, analytic = gaussian_world()
    scores = lira_scores(target, labels, refs, reference_in, online=online, fixed_variance=fixed_variance)
    assert scores.shape == (len(labels),)
    assert roc_auc_score(is_member, scores) == pytest.approx(analytic, abs=0.01)


def test_lira_without_per_sample_calibration_is_far_from_optimal():
    """The test can fail: the raw signal (no reference models) is much worse here."""
    target, labels, _, _, is_member, analytic = gaussian_world()
    assert roc_auc_score(is_member, logit_scaled_confidence(target, labels)) < analytic - 0.05


def test_lira_offline_is_the_out_z_statistic():
    target = np.array([[2.0, 0.0]])
    refs = np.array([[[0.0, 0.0]], [[1.0, 0.0]], [[5.0, 0.0]]])     # phi = 0, 1, 5
    reference_in = np.array([[False], [False], [True]])
    score = lira_scores(target, np.array([0]), refs, reference_in, online=False, fixed_variance=False)
    assert score[0] == pytest.approx((2.0 - 0.5) / np.std([0.0, 1.0], ddof=1))


def test_lira_bad_inputs_are_one_line_errors():
    target, labels, refs, reference_in, _, _ = gaussian_world(n=10, k=4)
    with pytest.raises(ValueError, match=r"online LiRA needs at least 2 reference models.*K=1"):
        lira_scores(target, labels, refs[:1], reference_in[:1])
    with pytest.raises(ValueError, match=r"reference_in: membership matrix has shape \(4, 9\), expected "
                                         r"\(K, N\) = \(4, 10\)"):
        lira_scores(target, labels, refs, reference_in[:, :9])
    with pytest.raises(ValueError, match=r"reference_logits: expected shape \(K, 10, 2\)"):
        lira_scores(target, labels, refs[:, :5], reference_in)
    all_in = np.ones_like(reference_in)
    with pytest.raises(ValueError, match="sample 0 has 0 OUT reference model"):
        lira_scores(target, labels, refs, all_in, online=False)
    with pytest.raises(ValueError, match="no sample is IN for any reference model"):
        lira_scores(target, labels, refs, np.zeros_like(reference_in))
    for error in (pytest.raises(ValueError), ):
        with error as info:
            lira_scores(target, labels + 5, refs, reference_in)
        assert "\n" not in str(info.value)


# ------------------------------------------------------------------ RMIA on Gaussian signals

def rmia_world(n=5_000, z=5_000, k=128, shift=0.8, sd=0.6, seed=1):
    """Pr(x|model) = q_i * exp(shift * IN + noise), q_i in [0.002, 0.02] (so Pr stays below 1: >5 sd);
    2 classes, label 0.

    Thresholding log Pr(x|target) - log q_i is optimal; its AUROC is Phi(shift / (sd sqrt 2)).
    """
    rng = np.random.default_rng(seed)

    def probs(p):   # only the label's column matters
        return np.stack([p, 1 - p], axis=-1)

    q = rng.uniform(0.002, 0.02, n)
    reference_in = balanced_membership(k, n, rng)
    ref = q * np.exp(shift * reference_in + rng.normal(0, sd, (k, n)))
    is_member = rng.random(n) < 0.5
    target = q * np.exp(shift * is_member + rng.normal(0, sd, n))
    qz = rng.uniform(0.002, 0.02, z)
    z_ref = qz * np.exp(rng.normal(0, sd, (k, z)))
    z_target = qz * np.exp(rng.normal(0, sd, z))
    analytic = norm.cdf(shift / (sd * np.sqrt(2)))
    return (probs(target), np.zeros(n, int), probs(ref), reference_in, probs(z_target), np.zeros(z, int),
            probs(z_ref), is_member, analytic)


@pytest.mark.parametrize("online,a", [(True, 1.0), (False, 1.0)])
def test_rmia_reaches_the_optimal_auroc_on_gaussian_signals(online, a):
    *inputs, is_member, analytic = rmia_world()
    scores = rmia_scores(*inputs, a=a, online=online)
    assert scores.shape == (len(is_member),) and 0 <= scores.min() and scores.max() <= 1
    assert roc_auc_score(is_member, scores) == pytest.approx(analytic, abs=0.01)


def test_rmia_offline_hand_computed():
    # one sample x, two population samples z; K = 3 models, model 2 trained on x and on both z,
    # so x and every z have the same 2 OUT models (models 0 and 1) and 1 IN model
    target = np.array([[0.6, 0.4]])
    refs = np.array([[[0.3, 0.7]], [[0.5, 0.5]], [[0.9, 0.1]]])
    reference_in = np.array([[False], [False], [True]])
    z_target = np.array([[0.5, 0.5], [0.2, 0.8]])
    z_refs = np.array([[[0.5, 0.5], [0.4, 0.6]], [[0.3, 0.7], [0.2, 0.8]], [[0.9, 0.1], [0.6, 0.4]]])
    z_in = np.array([[False, False], [False, False], [True, True]])
    a = 0.5
    offline = lambda out: ((1 + a) * out + (1 - a)) / 2
    ratio_x = 0.6 / offline(0.4)                                # OUT mean (0.3 + 0.5) / 2: 0.909
    ratio_z = [0.5 / offline(0.4), 0.2 / offline(0.3)]          # 0.909, 0.421
    labels, z_labels = np.array([0]), np.array([0, 0])
    for gamma, expected in ((1.0, 1.0), (1.5, 0.5), (4.0, 0.0)):
        assert [ratio_x / r >= gamma - 1e-12 for r in ratio_z].count(True) / 2 == expected
        score = rmia_scores(target, labels, refs, reference_in, z_target, z_labels, z_refs, a=a, gamma=gamma,
                            population_in=z_in)
        assert score[0] == expected
    online = rmia_scores(target, labels, refs, reference_in, z_target, z_labels, z_refs, a=a, gamma=1.2,
                         online=True, population_in=z_in)
    ratio_online = 0.6 / ((0.9 + 0.4) / 2)                      # (Pr_IN + Pr_OUT) / 2: 0.923
    ratio_z = [0.5 / ((0.9 + 0.4) / 2), 0.2 / ((0.6 + 0.3) / 2)]  # 0.769, 0.444
    assert [ratio_online / r >= 1.2 for r in ratio_z] == [True, True] and online[0] == 1.0
    online = rmia_scores(target, labels, refs, reference_in, z_target, z_labels, z_refs, a=a, gamma=1.25,
                         online=True, population_in=z_in)
    assert [ratio_online / r >= 1.25 for r in ratio_z] == [False, True] and online[0] == 0.5


def test_online_attacks_score_samples_outside_the_reference_population():
    """Rows declared outside the population: LiRA uses mu_out + the mean IN-OUT gap, RMIA the offline
    estimate; undeclared rows without IN models are refused, naming them."""
    target, labels, refs, reference_in, is_member, analytic = gaussian_world(k=64, outside_non_members=True)
    outside = ~reference_in.any(axis=0)
    assert outside.sum() > 4_000
    scores = lira_scores(target, labels, refs, reference_in, online=True, fixed_variance=True,
                         outside_population=outside)
    assert np.isfinite(scores).all()
    assert roc_auc_score(is_member, scores) == pytest.approx(analytic, abs=0.01)
    with pytest.raises(ValueError, match=r"reference_in: sample \d+, sample \d+, sample \d+ \(\d+ in all\) are "
                                         r"IN for no reference model; online LiRA"):
        lira_scores(target, labels, refs, reference_in, online=True, fixed_variance=True)
    *inputs, is_member, _ = rmia_world(n=2_000, z=2_000, k=16)
    inputs[3] = inputs[3] & ~(~is_member & (np.arange(2_000) % 2 == 0))[None, :]
    outside = ~inputs[3].any(axis=0)
    assert np.isfinite(rmia_scores(*inputs, online=True, outside_population=outside)).all()
    with pytest.raises(ValueError, match="IN for no reference model; online RMIA"):
        rmia_scores(*inputs, online=True)
    with pytest.raises(ValueError, match=r"outside_population: sample 1 is declared outside"):
        lira_scores(target, labels, refs, reference_in, outside_population=np.ones(len(labels), bool))


def test_rmia_bad_inputs_are_one_line_errors():
    *inputs, _, _ = rmia_world(n=6, z=4, k=4)
    target, labels, refs, reference_in, z_target, z_labels, z_refs = inputs
    with pytest.raises(ValueError, match=r"reference_in: membership matrix has shape \(3, 6\)"):
        rmia_scores(target, labels, refs, reference_in[:3], z_target, z_labels, z_refs)
    with pytest.raises(ValueError, match="population_reference_probs: expected shape"):
        rmia_scores(target, labels, refs, reference_in, z_target, z_labels, z_refs[:, :2])
    with pytest.raises(ValueError, match=r"a must lie in \[0, 1\]"):
        rmia_scores(*inputs, a=1.5)
    all_in = np.ones_like(reference_in)
    with pytest.raises(ValueError, match="sample 0 has 0 OUT reference model"):
        rmia_scores(target, labels, refs, all_in, z_target, z_labels, z_refs)


# ------------------------------------------------------------------ the pipeline's wrapper

def test_reference_attack_fits_threshold_on_shadow_and_scores_like_the_function():
    target, labels, refs, reference_in, is_member, _ = gaussian_world(n=2_000, k=16)
    signals = ReferenceSignals(target, labels, refs, reference_in, target[:50], labels[:50], refs[:, :50])
    attack = build_attack("lira")
    assert isinstance(attack, ReferenceAttack) and attack.name == "LiRA"
    with pytest.raises(NotFittedError, match="not fitted"):
        attack.decision_threshold()
    members, non_members = np.flatnonzero(is_member), np.flatnonzero(~is_member)
    attack.fit(signals, members[:500], non_members[:500])
    scores, decisions = attack.score_and_predict(signals)
    np.testing.assert_array_equal(scores, lira_scores(target, labels, refs, reference_in, fixed_variance=True))
    assert decisions.mean() > 0.3 and (decisions == is_member).mean() > 0.6
    rmia = build_attack("rmia_online").fit(signals, members[:500], non_members[:500])
    assert rmia.name == "RMIA Online" and rmia.score(signals).shape == (2_000,)
    with pytest.raises(NotFittedError, match="not fitted"):
        build_attack("rmia").score_and_predict(signals)


def test_variants_are_options_of_one_declared_attack():
    target, labels, refs, reference_in, _, _ = gaussian_world(n=300, k=8)
    signals = ReferenceSignals(target, labels, refs, reference_in, target[:50], labels[:50], refs[:, :50])
    for name, spec in ATTACKS.items():
        if not spec.needs_reference_models:
            continue
        attack = spec.build({}, seed=0)
        assert isinstance(attack, ReferenceAttack) and attack.name == spec.display and attack.spec is spec
        base = ATTACKS[name.split("_")[0]]
        assert spec.attack_class is base.attack_class and spec.params == base.params
    offline = build_attack("lira", online=False, variance="per_sample").score(signals)
    np.testing.assert_array_equal(offline, lira_scores(target, labels, refs, reference_in, online=False))
    assert build_attack("lira_offline").online is False and build_attack("rmia_online").online is True
    gamma = ATTACKS["rmia"].build({"rmia_gamma": 2.0, "rmia_a": 0.5}, seed=0)
    assert (gamma.gamma, gamma.a) == (2.0, 0.5)


def test_youden_threshold_picks_the_best_cut_and_nobody_without_signal():
    assert youden_threshold([3, 4, 5], [1, 2, 3.5], ties="highest") == 4   # TPR 2/3, FPR 0 beats t=3
    assert youden_threshold([1, 1], [2, 2], ties="highest") > 2             # no cut beats chance
    # the paper's floating-point J: 1 - 1/3 rounds above 2/3 - 0, so t=3 wins (members strictly above)
    assert youden_threshold([3, 4, 5], [1, 2, 3.5], ties="paper") == 3
    assert youden_threshold([1, 1], [2, 2], ties="paper") == 3              # largest score + 1
    with pytest.raises(ValueError, match="unknown tie rule"):
        youden_threshold([1], [0], ties="lowest")


# ------------------------------------------------------------------ LOSS and modified entropy

def test_loss_attack_hand_computed():
    members = np.array([[0.9, 0.1], [0.6, 0.4]])
    non_members = np.array([[0.5, 0.5], [0.2, 0.8]])
    attack = LossAttack().fit(members, non_members, np.array([0, 0]), np.array([0, 0]))
    threshold = (-np.log(0.9) - np.log(0.6)) / 2                 # mean member loss = 0.3081
    assert attack.threshold_ == pytest.approx(threshold)
    probs = np.array([[0.75, 0.25], [0.7, 0.3], [0.3, 0.7]])
    np.testing.assert_allclose(attack.score(probs, np.array([0, 0, -1])), np.log([0.75, 0.7, 0.7]))
    # loss 0.2877 <= t, 0.3567 > t; no label -> predicted class 1, loss 0.3567
    np.testing.assert_array_equal(attack.predict(probs, np.array([0, 0, -1])), [True, False, False])
    assert cross_entropy(np.array([[1.0, 0.0]]), np.array([1]))[0] == pytest.approx(708.396, abs=1e-3)


def test_modified_entropy_hand_computed():
    p = np.array([[0.7, 0.2, 0.1]])
    expected = -(0.3 * np.log(0.7)) - 0.2 * np.log(0.8) - 0.1 * np.log(0.9)
    assert modified_entropy(p, np.array([0]))[0] == pytest.approx(expected)
    wrong = -(0.8 * np.log(0.2)) - 0.7 * np.log(0.3) - 0.1 * np.log(0.9)   # label 1: large
    assert modified_entropy(p, np.array([1]))[0] == pytest.approx(wrong)
    assert modified_entropy(np.array([[1.0, 0.0]]), np.array([0]))[0] == 0.0


def test_modified_entropy_thresholds_are_class_wise():
    # class 0: members very confident, non-members less; class 1: everything near 0.6
    members = np.array([[0.99, 0.01], [0.98, 0.02], [0.35, 0.65], [0.4, 0.6]])
    non_members = np.array([[0.8, 0.2], [0.7, 0.3], [0.45, 0.55], [0.5, 0.5]])
    y_m, y_n = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])
    attack = ModifiedEntropyAttack().fit(members, non_members, y_m, y_n)
    v = lambda probs, y: -modified_entropy(probs, y)
    assert attack.thresholds_[0] == pytest.approx(v(members[1:2], y_m[1:2])[0])   # least confident member
    assert attack.thresholds_[1] == pytest.approx(v(members[3:4], y_m[3:4])[0])
    assert attack.thresholds_[0] != attack.thresholds_[1]
    np.testing.assert_array_equal(attack.predict(members, y_m), [True, True, True, True])
    np.testing.assert_array_equal(attack.predict(non_members, y_n), [False, False, False, False])
    # a class-1 sample as confident as a non-member of class 0 counts as a member of class 1
    probe = np.array([[0.2, 0.8]])
    assert attack.predict(probe, np.array([1]))[0] and not attack.predict(probe[:, ::-1], np.array([0]))[0]


def test_new_score_attacks_are_built_by_name():
    assert isinstance(build_attack("loss"), LossAttack)
    assert isinstance(build_attack("modified_entropy"), ModifiedEntropyAttack)


@pytest.mark.parametrize("name", ["loss", "modified_entropy"])
def test_new_score_attacks_follow_the_attack_lifecycle(name):
    import torch

    from attacks import NotFittedError

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(80, 5)) * 4.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    members, non_members, labels = probs[:40], probs[40:], rng.integers(0, 5, 80)
    with pytest.raises(NotFittedError):
        build_attack(name).score(members)
    attack = build_attack(name).fit(members, non_members, labels[:40], labels[40:])
    scores, decisions = attack.score_and_predict(non_members, labels[40:])
    assert scores.shape == (40,) and decisions.dtype == bool
    np.testing.assert_array_equal(decisions, scores >= attack.decision_threshold())
    from_torch = build_attack(name).fit(torch.tensor(members), torch.tensor(non_members),
                                        torch.tensor(labels[:40]), torch.tensor(labels[40:]))
    np.testing.assert_array_equal(from_torch.score(non_members, labels[40:]), scores)
    with pytest.raises(ValueError, match=r"labels: has 3 entries but probs has 40 rows"):
        attack.predict(members, np.array([0, 1, 2]))


# ------------------------------------------------------------------ count invariance (no membership signal)

def unequal_world(n=5_000, k=16, z=2_000, member_in=8, non_member_in=4, seed=3):
    """Members IN for ``member_in`` of k models, non-members for ``non_member_in``; saturated,
    heavy-tailed signals: logit phi = s_i + IN + t(2) noise with s_i ~ U(8, 16) (1 - p ~ 1e-6 and far
    lower in the tail). The target is drawn like an OUT model for every row: it carries no membership.
    """
    rng = np.random.default_rng(seed)

    def layout(rows, ins):
        keys = rng.random((k, rows))
        return keys < np.sort(keys, axis=0)[ins - 1][None, :] + 1e-12 if ins else np.zeros((k, rows), bool)

    reference_in = np.concatenate([layout(n, member_in), layout(n, non_member_in)], axis=1)
    is_member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    difficulty = rng.uniform(8, 16, 2 * n)
    noise = lambda shape: rng.standard_t(2, shape)
    ref_phi = difficulty + 1.5 * reference_in + noise((k, 2 * n))
    target_phi = difficulty + noise(2 * n)                      # independent of membership
    z_difficulty = rng.uniform(8, 16, z)
    z_ref_phi, z_phi = z_difficulty + noise((k, z)), z_difficulty + noise(z)
    logits = lambda phi: np.stack([phi, np.zeros_like(phi)], axis=-1)
    probs = lambda phi: np.stack([1 / (1 + np.exp(-phi)), 1 / (1 + np.exp(phi))], axis=-1)
    return dict(target_phi=target_phi, ref_phi=ref_phi, reference_in=reference_in, is_member=is_member,
                z_phi=z_phi, z_ref_phi=z_ref_phi, logits=logits, probs=probs, labels=np.zeros(2 * n, int),
                z_labels=np.zeros(z, int))


@pytest.mark.parametrize("member_in,non_member_in", [(8, 4), (4, 8), (8, 0)])
@pytest.mark.parametrize("online", [False, True])
def test_every_reference_attack_gives_chance_when_the_target_carries_no_membership(member_in, non_member_in, online):
    """Different IN/OUT counts for members and non-members must not move the AUROC off 0.5."""
    w = unequal_world(member_in=member_in, non_member_in=non_member_in)
    if online and non_member_in == 0:
        with pytest.raises(ValueError, match="IN for no reference model; online LiRA"):
            lira_scores(w["logits"](w["target_phi"]), w["labels"], w["logits"](w["ref_phi"]), w["reference_in"])
        return
    for fixed in (True, False):
        scores = lira_scores(w["logits"](w["target_phi"]), w["labels"], w["logits"](w["ref_phi"]),
                             w["reference_in"], online=online, fixed_variance=fixed)
        assert roc_auc_score(w["is_member"], scores) == pytest.approx(0.5, abs=0.02), ("LiRA", fixed)
    for a, trim in ((0.3, 0.0), (1.0, 0.0), (0.3, 0.2)):
        scores = rmia_scores(w["probs"](w["target_phi"]), w["labels"], w["probs"](w["ref_phi"]), w["reference_in"],
                             w["probs"](w["z_phi"]), w["z_labels"], w["probs"](w["z_ref_phi"]), a=a, online=online,
                             trim=trim)
        assert roc_auc_score(w["is_member"], scores) == pytest.approx(0.5, abs=0.02), ("RMIA", a, trim)


def test_equal_counts_use_seeded_subsets_and_leave_balanced_layouts_alone():
    w = unequal_world(n=500, z=100)
    args = (w["logits"](w["target_phi"]), w["labels"], w["logits"](w["ref_phi"]), w["reference_in"])
    np.testing.assert_array_equal(lira_scores(*args, seed=1), lira_scores(*args, seed=1))
    assert not np.array_equal(lira_scores(*args, seed=1), lira_scores(*args, seed=2))
    target, labels, refs, reference_in, _, _ = gaussian_world(n=300, k=8)      # K/2 IN for every row
    np.testing.assert_array_equal(lira_scores(target, labels, refs, reference_in, seed=1),
                                  lira_scores(target, labels, refs, reference_in, seed=2))
    fixed = lira_scores(*args, online=False, models_per_row=2)
    assert np.isfinite(fixed).all()
    with pytest.raises(ValueError, match=r"models_per_row=9 needs 9 per sample"):
        lira_scores(*args, online=False, models_per_row=9)        # non-members have 8 OUT models... members 8
    with pytest.raises(ValueError, match=r"models_per_row: expected an integer >= 2 for online LiRA"):
        lira_scores(*args, online=True, models_per_row=1)


def test_rmia_signal_options():
    from attacks.rmia import RmiaAttack
    from attacks.rmia_signal import rmia_signal

    logits = np.array([[3.0, 1.0, -2.0], [0.5, 0.2, 0.1]])
    labels = np.array([0, 2])
    soft = rmia_signal(logits, labels)
    np.testing.assert_allclose(soft, np.exp(logits[[0, 1], labels]) / np.exp(logits).sum(1))
    hot = rmia_signal(logits, labels, temperature=2.0)
    np.testing.assert_allclose(hot, np.exp(logits[[0, 1], labels] / 2) / np.exp(logits / 2).sum(1))
    t = lambda x: 1 + x + x ** 2 / 2 + x ** 3 / 6                 # n = 4 terms
    x = logits / 2
    expected = t(x[0, 0] - 0.6) / (t(x[0, 0] - 0.6) + t(x[0, 1]) + t(x[0, 2]))
    taylor = rmia_signal(logits, labels, "taylor_soft_margin", temperature=2.0, taylor_m=0.6, taylor_n=4)
    assert taylor[0] == pytest.approx(expected)
    with pytest.raises(ValueError, match="unknown 'margin'; valid: softmax, taylor_soft_margin"):
        rmia_signal(logits, labels, "margin")
    target, labels, refs, reference_in, is_member, _ = gaussian_world(n=2_000, k=16)
    signals = ReferenceSignals(target, labels, refs, reference_in, target[:50], labels[:50], refs[:, :50])
    members, non_members = np.flatnonzero(is_member)[:500], np.flatnonzero(~is_member)[:500]
    auto = build_attack("rmia", temperature="auto")
    with pytest.raises(NotFittedError, match="not fitted"):
        auto.score(signals)
    auto.fit(signals, members, non_members)
    assert auto.temperature_ in RmiaAttack.TEMPERATURES
    assert set(auto.shadow_auroc_by_temperature_) == set(RmiaAttack.TEMPERATURES)
    fixed = build_attack("rmia_online", temperature=2.0, gamma=2.0, models_per_row=4)
    assert fixed.fit(signals, members, non_members).score(signals).shape == (2_000,)


def test_rmia_signal_options_are_flags_with_their_defaults():
    from configuration.cli import parse_config
    from configuration.config import config_from_preset, validate_config

    defaults = ATTACKS["rmia"].build({}, seed=0)
    assert (defaults.signal, defaults.temperature, defaults.taylor_m, defaults.taylor_n, defaults.models_per_row,
            defaults.trim) == ("softmax", "auto", 0.6, 4, None, 0.0)
    config = parse_config("digits", ["--reference_models", "8", "--rmia_signal", "taylor_soft_margin",
                                     "--rmia_temperature", "auto", "--rmia_taylor_n", "5",
                                     "--reference_models_per_row", "4"])
    rmia = ATTACKS["rmia_online"].build(config.attack_params, seed=3)
    assert (rmia.signal, rmia.temperature, rmia.taylor_n, rmia.models_per_row, rmia.seed) \
        == ("taylor_soft_margin", "auto", 5, 4, 3)
    assert ATTACKS["lira"].build(config.attack_params, seed=0).models_per_row == 4
    assert parse_config("digits", ["--rmia_temperature", "2"]).attack_params["rmia_temperature"] == 2.0
    with pytest.raises(SystemExit):
        parse_config("digits", ["--rmia_temperature", "-1"])
    for bad, match in (({"rmia_gamma": float("inf")}, "gamma must be a finite positive number"),
                       ({"rmia_taylor_n": 1}, "--rmia_taylor_n must be at least 2"),
                       ({"reference_models_per_row": 0}, "--reference_models_per_row must be at least 1")):
        with pytest.raises(ValueError, match=match):
            validate_config(config_from_preset("digits", reference_models=8, **bad))
