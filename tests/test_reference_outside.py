"""Rows outside the reference population (OOD, perturbed, generated) are scored on the same footing
as rows inside it: rows drawn exactly like inside non-members but declared outside must be
indistinguishable from them (AUROC 0.5) for every reference attack, online and offline."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from attacks.factory import build_attack
from attacks.reference import ReferenceSignals, nearest_seen_row


def twin_world(n=5_000, z=2_000, k=16, classes=10, seed=3):
    """``n`` inside rows (IN for k/2 models) then ``n`` rows drawn the same way but IN for none
    (declared outside); the target trained on none of them."""
    rng = np.random.default_rng(seed)

    def block(rows, membership):
        base = rng.normal(3.0, 2.0, rows)
        labels = rng.integers(0, classes, rows)

        def logits(is_in):              # (..., rows, classes): the label's logit grows when IN
            out = rng.normal(0.0, 1.0, is_in.shape + (classes,))
            picked = base + 1.5 * is_in + rng.normal(0.0, 1.0, is_in.shape)
            np.put_along_axis(out, np.broadcast_to(labels[:, None], is_in.shape + (1,)), picked[..., None], axis=-1)
            return out
        return labels, logits(np.zeros(rows, bool)), logits(membership)

    def balanced(rows):
        return np.argsort(rng.random((k, rows)), axis=0) < k // 2

    inside_in = balanced(n)
    y1, t1, r1 = block(n, inside_in)
    y2, t2, r2 = block(n, np.zeros((k, n), bool))
    z_in = balanced(z)
    zy, zt, zr = block(z, z_in)
    return ReferenceSignals(np.r_[t1, t2], np.r_[y1, y2], np.concatenate([r1, r2], axis=1),
                            np.c_[inside_in, np.zeros((k, n), bool)], zt, zy, zr, population_in=z_in,
                            outside_population=np.r_[np.zeros(n, bool), np.ones(n, bool)])


CASES = [("lira", {}), ("lira", {"variance": "per_sample"}), ("lira_offline", {}),
         ("lira_offline", {"variance": "per_sample"})] + [
    (name, options) for name in ("rmia", "rmia_online") for options in (
        {"temperature": 1.0}, {"temperature": 10.0}, {"temperature": 1.0, "trim": 0.2},
        {"signal": "taylor_soft_margin", "temperature": 2.0, "gamma": 2.0, "taylor_n": 4, "trim": 0.2})]


@pytest.fixture(scope="module")
def world():
    return twin_world()


@pytest.mark.parametrize("name,options", CASES)
def test_rows_declared_outside_score_like_the_same_rows_inside(world, name, options):
    scores = build_attack(name, **options).score(world)
    outside = world.outside_population
    assert np.isfinite(scores).all()
    assert roc_auc_score(outside, scores) == pytest.approx(0.5, abs=0.02)


def test_nearest_seen_row_borrows_from_the_closest_inside_row():
    statistic = np.array([0.0, 1.0, 0.45, 3.0, 0.55, -2.0])
    seen = np.array([True, True, False, True, False, False])
    assert nearest_seen_row(statistic, seen).tolist() == [0, 1, 0, 3, 1, 0]
    assert nearest_seen_row(statistic, np.ones(6, bool)).tolist() == list(range(6))


def test_signed_ratios_are_compared_as_they_are():
    """Even taylor_n: signals (and Pr(x)) can be negative; LR(x, z) = ratio_x / ratio_z >= gamma is
    counted with the signs as they are (the RMIA authors' code), and equals the log path when positive."""
    from attacks.reference import _signed_counts

    ratio_z = np.array([0.5, 2.0, -1.0, -4.0, 0.0])
    for x in (3.0, 1.0, -2.0, 0.0):
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = sum(bool(x / z >= 2.0) if z != 0 else x > 0 for z in ratio_z)
        assert _signed_counts(np.array([x]), ratio_z, 2.0)[0] == expected
    positive = np.random.default_rng(0).uniform(0.1, 3, (2, 50))
    logs = np.searchsorted(np.sort(np.log(positive[1])), np.log(positive[0]) - np.log(1.5), side="right")
    assert (_signed_counts(positive[0], positive[1], 1.5) == logs).all()
