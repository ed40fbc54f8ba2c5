"""Tests of the reference population's membership (pipeline/stages/reference.py) and of the null test and
reference-as-target evaluation (engine/reference_checks.py), on arrays."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from attacks import build_attack
from attacks.reference import ReferenceSignals
from models.reference_pool import check_layout, population_membership
from engine.reference_checks import (null_test_problems, null_test_sentence, null_test_table,
                                                  reference_as_target_table, report_sections)


@pytest.mark.parametrize("k,rows,train", [(8, 1600, 400), (16, 1600, 400), (6, 1600, 400), (5, 30, 12)])
def test_membership_gives_every_row_the_same_count_and_every_model_the_targets_size(k, rows, train):
    membership = population_membership(k, rows, train, seed=0)
    assert membership.shape == (k, rows)
    assert (membership.sum(axis=1) == train).all()                       # as many rows as the target
    per_row = membership.sum(axis=0)
    assert per_row.max() - per_row.min() <= 1 and per_row.min() >= 1
    if k * train % rows == 0:
        assert (per_row == k * train // rows).all()
    assert len({tuple(np.flatnonzero(m)) for m in membership}) == k      # no two models share a training set
    np.testing.assert_array_equal(membership, population_membership(k, rows, train, seed=0))


def test_layout_needs_every_row_in_and_out_for_some_model():
    with pytest.raises(ValueError, match=r"^--reference_models 2: the reference population has 1600 rows .* "
                                         r"K >= 4; use --reference_models 4 or more$"):
        check_layout(2, 1600, 400)
    with pytest.raises(ValueError, match="cannot give reference models 10 training rows"):
        check_layout(4, 10, 10)
    check_layout(4, 1600, 400)


def synthetic_signals(n=1200, k=8, z=200, shift=1.5, seed=0):
    """2-class logits [phi, 0]; reference models IN for a row add ``shift``; the target is model-like."""
    rng = np.random.default_rng(seed)
    membership = population_membership(k, n + z, (n + z) // 4, seed)
    difficulty = rng.uniform(2, 8, n + z)
    phi = difficulty + shift * membership + rng.normal(0, 1, (k, n + z))
    logits = np.stack([phi, np.zeros_like(phi)], axis=-1)
    target_member = rng.random(n + z) < 0.5
    target = np.stack([difficulty + shift * target_member + rng.normal(0, 1, n + z), np.zeros(n + z)], axis=-1)
    labels = np.zeros(n + z, int)
    zs = np.arange(n, n + z)
    signals = ReferenceSignals(target, labels, logits, membership, target[zs], labels[zs], logits[:, zs],
                               population_in=membership[:, zs])
    return signals, membership, target_member, n


def test_reference_models_as_targets_give_mean_and_sd_over_the_models():
    signals, membership, target_member, n = synthetic_signals()
    members, non_members = np.flatnonzero(target_member[:n]), np.flatnonzero(~target_member[:n])
    attacks = [build_attack(name).fit(signals, members, non_members)     # RMIA's temperature is chosen in fit
               for name in ("lira", "lira_offline", "rmia", "rmia_online")]
    table = reference_as_target_table(attacks, signals, np.arange(n), membership)
    assert list(table.index) == ["LiRA", "LiRA Offline", "RMIA", "RMIA Online"]
    assert (table["Targets"] == 8).all() and (table["Skipped"] == "").all()
    assert (table["AUROC mean"] > 0.65).all() and (table["AUROC sd"] > 0).all()
    assert ((table["TPR@1%FPR mean"] >= table["TPR@0.1%FPR mean"])).all()


def test_reference_as_target_skips_online_attacks_left_without_in_models():
    signals, membership, _, n = synthetic_signals(k=4)                   # each row IN for 1 of 4 models
    attacks = [build_attack("lira"), build_attack("lira_offline")]
    table = reference_as_target_table(attacks, signals, np.arange(n), membership)
    assert table.loc["LiRA", "Targets"] == 0 and "IN for no reference model" in table.loc["LiRA", "Skipped"]
    assert np.isnan(table.loc["LiRA", "AUROC mean"])
    assert table.loc["LiRA Offline", "Targets"] == 4


def test_null_test_table_and_flag():
    rng = np.random.default_rng(0)
    real = {"A": {"Members": rng.normal(1, 1, 200), "Original": rng.normal(0, 1, 200)}}
    null = {"A": {"Members": rng.normal(0, 1, 200), "Original": rng.normal(0, 1, 200)}}
    table = null_test_table(real, null, ["Original"])
    assert list(table.columns) == ["A AUROC", "A TPR@1%FPR", "A Null AUROC", "A Null TPR@1%FPR", "A Null AUROC low",
                                   "A Null AUROC high", "A Null p"]
    assert table.loc["Original", "A AUROC"] > 0.7 and abs(table.loc["Original", "A Null AUROC"] - 0.5) < 0.06
    assert table.loc["Original", "A Null AUROC low"] < 0.5 < table.loc["Original", "A Null AUROC high"]
    assert null_test_problems(table) == []
    leaky = {"A": {"Members": rng.normal(0.6, 1, 200), "Original": rng.normal(0, 1, 200)}}
    flagged = null_test_table(real, leaky, ["Original"])
    (problem,) = null_test_problems(flagged)
    assert problem.startswith("**A**: null AUROC 0.6") and "measurement problem" in problem

    class Outcome:
        null_test = flagged
        as_target = pd.DataFrame({"Targets": [4], "AUROC mean": [0.6], "AUROC sd": [0.01],
                                  "TPR@0.1%FPR mean": [0.0], "TPR@0.1%FPR sd": [0.0], "TPR@1%FPR mean": [0.02],
                                  "TPR@1%FPR sd": [0.01], "Skipped": [""]}, index=pd.Index(["A"], name="attack"))

    assert null_test_sentence(Outcome()).startswith("The reference attacks' null test failed")
    assert "**A**: null AUROC 0.6" in null_test_sentence(Outcome()) and null_test_sentence(None) is None
    (null_heading, null_body), (_, target_body) = report_sections(Outcome(), {})
    assert null_heading == "Null test of the reference attacks" and "measurement problem" in null_body
    assert "| A | 4 | 0.6000 +- 0.0100 |" in target_body


@pytest.mark.slow
def test_run_uses_the_papers_layout_and_writes_the_null_test_and_reference_as_target_tables(tmp_path):
    import json

    from configuration.config import config_from_preset
    from engine.bundle import HELD_OUT
    from pipeline.run import run_experiment

    config = config_from_preset(
        "digits", epochs=2, train_set_size=60, test_set_size=60, attack_set_size=30, batch_size=32,
        sets=("original", "noise"), reference_models=8, progress=False, figures=True,
        results_dir=str(tmp_path / "results"), pretrained_dir=str(tmp_path / "checkpoints"))
    outputs = run_experiment(config)
    reference = outputs.result.bundle.reference          # what the run handed the engine
    signals, blocks = reference.target, reference.blocks
    inside = ~signals.outside_population
    assert inside.sum() == 240 and inside[:240].all()                   # all four splits, first
    assert (signals.reference_in.sum(axis=1) == 60).all()               # each model: the target's count
    per_row = signals.reference_in[:, inside].sum(axis=0)
    assert (per_row == 2).all() and not signals.reference_in[:, ~inside].any()   # K * 60 / 240; OOD: none
    for block in ("Members", "Original", HELD_OUT):
        assert blocks[block].max() < 240
    assert len(reference.evaluated_rows) == 240 - len(signals.population_labels)   # population rows but the z
    assert signals.outside_population[blocks["Noise"]].all()
    null = pd.read_csv(outputs.files["reference_null_test_results"], index_col=0)
    assert {"Original", "Noise", HELD_OUT} <= set(null.index)
    assert {"LiRA Null AUROC", "RMIA Online Null TPR@1%FPR", "RMIA AUROC"} <= set(null.columns)
    as_target = pd.read_csv(outputs.files["reference_as_target_results"], index_col=0)
    assert list(as_target.index) == ["LiRA", "LiRA Offline", "RMIA", "RMIA Online"]
    assert as_target.loc["LiRA Offline", "Targets"] == 8
    report = outputs.files["report"].read_text()
    assert "## Null test of the reference attacks" in report and "## Reference models as targets" in report
    assert (report.index("## Attacks") < report.index("## Null test of the reference attacks")
            < report.index("## Reference models as targets") < report.index("## Model metrics"))
    notes = json.loads(outputs.files["manifest"].read_text())["notes"]["reference_pool"]
    assert notes["in_models_per_row"] == [2] and notes["train_rows_per_model"] == 60
