"""End-to-end runs of the digits pipeline at tiny size: schema, ranges, determinism, files."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from attacks.evaluation import EXTRA_METRICS, PAPER_METRICS
from datasets import GeneratedSizes
from configuration.config import config_from_preset
from engine.tables import EXTRA_PERFORMANCE_ROWS, PAPER_PERFORMANCE_ROWS
from pipeline.run import run_experiment
from models.inference import ForwardCounter

pytestmark = pytest.mark.slow  # end-to-end runs (kept in the default run)

TINY = dict(epochs=3, train_set_size=120, test_set_size=120, attack_set_size=60, batch_size=32,
            progress=False)


def tiny_config(tmp_path, **overrides):
    options = {**TINY, "results_dir": str(tmp_path / "results"),
               "pretrained_dir": str(tmp_path / "checkpoints"), **overrides}
    return config_from_preset("digits", **options)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("run")
    sets = ("original", "permuted", "scaled", "no_normalization", "noise", "sample_photos")
    return run_experiment(tiny_config(tmp_path, sets=sets)), tmp_path


def test_attack_csv_schema_and_ranges(tiny_run):
    outputs, _ = tiny_run
    table = pd.read_csv(outputs.files["attack_results"], index_col=0)
    assert list(table.index) == ["Original", "Permuted", "Scaled", "No Normalization", "Noise",
                                 "Photo Patches"]
    attacks = ["Threshold", "Salem", "Entropy", "Shokri"]
    expected = ([f"{a} Attack {m}" for a in attacks for m in PAPER_METRICS]
                + [f"{a} Attack {m}" for a in attacks for m in EXTRA_METRICS])
    assert list(table.columns) == expected
    assert table.notna().all().all()
    assert ((table >= 0) & (table <= 1)).all().all()
    # members are the same in every row, so recall does not depend on the non-member set
    assert table["Threshold Attack Recall"].nunique() == 1


def test_performance_csv_and_manifest(tiny_run):
    outputs, _ = tiny_run
    performance = pd.read_csv(outputs.files["performance_results"], index_col=0)
    assert list(performance.index) == list(PAPER_PERFORMANCE_ROWS + EXTRA_PERFORMANCE_ROWS)
    assert ((performance["Value"] >= 0) & (performance["Value"] <= 1)).all()
    assert performance.loc["Train Acc. Target", "Value"] > 0.3
    # the paper's sixth row, "ECE Target" again, holds the shadow model's ECE (its script's label)
    assert performance["Value"].iloc[5] == performance.loc["ECE Shadow", "Value"]
    assert performance["Value"].iloc[2] == pytest.approx(outputs.performance_table["Value"].iloc[2], abs=5e-5)
    manifest = json.loads(outputs.files["manifest"].read_text())
    assert manifest["seed"] == 42 and manifest["config"]["attack_set_size"] == 60
    assert manifest["versions"]["torch"].startswith("2.14.1")
    assert set(manifest["checksums"]) >= {"split:target_train", "set:Scaled"}
    assert {"data", "models", "scores", "attacks_fit", "attacks_evaluate"} <= set(manifest["timings_s"])


def test_figures_and_report_written(tiny_run):
    outputs, _ = tiny_run
    for name in ("max_scores", "false_positives", "reliability_target", "report"):
        assert outputs.files[name].exists() and outputs.files[name].stat().st_size > 0, name
    report = outputs.files["report"].read_text()
    assert "Comparison with the paper" in report and "Threshold" in report


def test_scores_once_per_sample_and_cached(tiny_run, monkeypatch):
    outputs, tmp_path = tiny_run
    prepared = outputs.prepared
    assert len(outputs.target_scores["Members"]) == 60
    assert all(len(s) == 60 for s in outputs.target_scores.values())
    manifest = json.loads(outputs.files["manifest"].read_text())
    assert manifest["notes"]["score_cache"]["hits"] == 0
    assert not any(m.trained is False for m in prepared.models.values())

    # Rerun on the saved checkpoints without the cache, counting samples through each forward.
    import pipeline.stages.models as model_stage

    counters, build = [], model_stage.build_model

    def counted_build(*args, **kwargs):
        model = build(*args, **kwargs)
        counters.append(ForwardCounter(model))
        return model

    monkeypatch.setattr(model_stage, "build_model", counted_build)
    sets = ("original", "permuted", "scaled", "no_normalization", "noise", "sample_photos")
    again = run_experiment(tiny_config(tmp_path, sets=sets, cache_scores=False, figures=False))
    assert all(m.trained is False for m in again.prepared.models.values())
    target, shadow = counters
    # every train and test row once, plus each non-member set that is not a split's own rows
    assert target.samples == 120 + 120 + 60 * (len(sets) - 1)
    assert shadow.samples == 120 + 120


def test_same_seed_same_csv_and_reuse_of_checkpoints(tiny_run):
    outputs, tmp_path = tiny_run
    again = run_experiment(tiny_config(tmp_path, sets=("original", "permuted", "scaled",
                                                       "no_normalization", "noise", "sample_photos"),
                                       figures=False))
    assert again.files["attack_results"].read_bytes() == outputs.files["attack_results"].read_bytes()
    assert all(m.trained is False for m in again.prepared.models.values())
    manifest = json.loads(again.files["manifest"].read_text())
    assert manifest["notes"]["score_cache"]["misses"] == 0


def test_fresh_training_is_deterministic(tmp_path):
    first = run_experiment(tiny_config(tmp_path / "a", sets=("original", "scaled"), figures=False))
    second = run_experiment(tiny_config(tmp_path / "b", sets=("original", "scaled"), figures=False))
    assert first.files["attack_results"].read_bytes() == second.files["attack_results"].read_bytes()
    np.testing.assert_array_equal(first.target_scores["Scaled"].probs, second.target_scores["Scaled"].probs)


def test_fake_row_from_the_attackers_gan(tmp_path, monkeypatch):
    import datasets.fake_digits as fake_digits

    seen = {}
    real_make = fake_digits.make_fake_digits

    def spy(images, labels, **kwargs):
        seen["images"] = images
        return real_make(images, labels, **kwargs)

    monkeypatch.setattr(fake_digits, "make_fake_digits", spy)
    config = tiny_config(tmp_path, sets=("original", "fake_digits"), figures=True,
                         sizes=GeneratedSizes(gan_steps=60, fake_images=100))
    outputs = run_experiment(config)
    assert list(outputs.attack_table.index) == ["Original", "Fake"]
    assert outputs.target_scores["Fake"].in_label_space and len(outputs.target_scores["Fake"]) == 60
    assert outputs.files["fake_digits_samples"].stat().st_size > 0
    assert "fake_digits_samples" in outputs.files["report"].read_text()
    # the GAN is trained on the attacker's shadow split, never on the target's training data
    data = outputs.prepared.data
    assert torch.allclose(seen["images"], data.domain.denormalize(data.splits["shadow_train"].images))
    manifest = json.loads(outputs.files["manifest"].read_text())
    assert "set:Fake" in manifest["checksums"]


def test_default_run_reproduces_the_papers_scaled_finding(tmp_path):
    """At the default sizes and training, the overconfident target calls nearly every Scaled image a member."""
    config = config_from_preset("digits", results_dir=str(tmp_path / "r"), pretrained_dir=str(tmp_path / "c"),
                                sets=("original", "scaled"), figures=False, progress=False)
    table = run_experiment(config).attack_table
    assert table.loc["Scaled", "Threshold Attack FPR"] >= 0.95
    assert table.loc["Scaled", "Threshold Attack FP_MMPS"] > 0.99
