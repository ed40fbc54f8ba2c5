"""The paper's scripts end to end on tiny data folders in the real on-disk formats."""
import json
from pathlib import Path

import pandas as pd
import pytest
from torchvision.datasets import CIFAR10, SVHN

from datasets import sources
from pipeline.cli import main
from engine.tables import PAPER_PERFORMANCE_ROWS
from tests.fixtures_data import (make_tiny_afhq, make_tiny_cifar10, make_tiny_stanford_dogs,
                                 make_tiny_svhn, use_tiny_checksums)

pytestmark = pytest.mark.slow  # end-to-end runs (kept in the default run)

def use_tiny_dogs_and_afhq(tmp_path, monkeypatch) -> dict:
    """Tiny Stanford Dogs and AFHQ folders under ``tmp_path`` whose checksums the sources accept."""
    made = make_tiny_stanford_dogs(tmp_path, breeds=4, per_breed=20, test_per_breed=5)
    for key, value in {**made["file_md5"], **made["folder_md5"]}.items():
        table = sources.FILE_MD5 if key.endswith(".mat") else sources.FOLDER_MD5
        monkeypatch.setitem(table, key, value)
    monkeypatch.setitem(sources.FOLDER_MD5, "afhq", make_tiny_afhq(tmp_path, per_class=12)["folder_md5"]["afhq"])
    return made


FIGURES = ("max_score_distributions.png", "false_positives.png", "reliability_target.png",
           "reliability_shadow.png", "roc_Threshold_Attack.png",
           "report.md")


# Row names and order of the paper's published tables (reporting/paper_results/), for both scripts.
PUBLISHED = Path(__file__).resolve().parents[1] / "reporting" / "paper_results"
CIFAR10_ROWS = list(pd.read_csv(PUBLISHED / "resnet18_cifar10_attack_results.csv", index_col=0).index)
DOGS_ROWS = list(pd.read_csv(PUBLISHED / "resnet50_stanford_dogs_attack_results.csv", index_col=0).index)


def run_script(dataset, root, *extra):
    argv = ["--data_root", str(root), "--results_dir", str(root / "results"), "--pretrained_dir",
            str(root / "checkpoints"), "--model_arch", "salem_cnn_relu", "--epochs", "1", "--quiet", *extra]
    assert main(dataset, argv) == 0
    return root / "results"


def check_outputs(results, stem, rows, skipped):
    """``rows``: every row name in order; ``skipped``: key -> row name of the skipped ones."""
    table = pd.read_csv(results / f"{stem}attack_results.csv", index_col=0, keep_default_na=False,
                        na_values=[""])
    assert list(table.index) == rows
    metrics = table.drop(columns="Skipped")
    evaluated = [row for row in rows if row not in skipped.values()]
    assert metrics.loc[evaluated].notna().all().all() and table.loc[evaluated, "Skipped"].isna().all()
    assert metrics.loc[list(skipped.values())].isna().all().all()
    assert table.loc[list(skipped.values()), "Skipped"].str.len().gt(0).all()  # the reason
    performance = pd.read_csv(results / f"{stem}performance_results.csv", index_col=0)
    assert list(performance.index[:6]) == list(PAPER_PERFORMANCE_ROWS)
    for name in FIGURES:
        assert (results / f"{stem}{name}").stat().st_size > 0, name
    report = (results / f"{stem}report.md").read_text()
    for key in skipped:
        assert key in report
    manifest = json.loads((results / f"{stem}manifest.json").read_text())
    assert set(manifest["notes"]["skipped_sets"]) == set(skipped)
    return table


def test_cifar10_script_trains_and_runs_on_a_tiny_folder(tmp_path, monkeypatch):
    use_tiny_checksums(monkeypatch, CIFAR10, make_tiny_cifar10(tmp_path, per_class=10))
    use_tiny_checksums(monkeypatch, SVHN, make_tiny_svhn(tmp_path, sizes={"train": 30, "test": 5}))
    monkeypatch.setitem(sources.FOLDER_MD5, "afhq", make_tiny_afhq(tmp_path, per_class=12)["folder_md5"]["afhq"])
    sizes = ["--train_set_size", "30", "--test_set_size", "20", "--attack_set_size", "10"]
    results = run_script("cifar10", tmp_path, "--train", *sizes)
    stem = "salem_cnn_relu_cifar10_"
    first = check_outputs(results, stem, CIFAR10_ROWS,
                          {"stl10": "STL-10", "cifar100": "CIFAR100", "stanford_dogs": "Stanford Dogs",
                           "fake_cifar10": "Fake CIFAR-10"})
    csv = (results / f"{stem}attack_results.csv").read_bytes()
    run_script("cifar10", tmp_path, *sizes)  # same command without --train: loads the checkpoints
    assert (results / f"{stem}attack_results.csv").read_bytes() == csv
    evaluated = first.drop(columns=[c for c in first.columns if c == "Skipped"]).dropna(how="all")
    assert {"Original", "Permuted", "Scaled", "No Normalization"} <= set(evaluated.index)
    rates = evaluated[[c for c in evaluated.columns if c.endswith((" Precision", " Recall", " FPR", " AUROC"))]]
    assert rates.notna().all().all() and ((rates >= 0) & (rates <= 1)).all().all()
    assert (evaluated["Threshold Attack Recall"] > 0).all()  # trained members are found


def test_cifar10_strict_fails_on_missing_sets(tmp_path, monkeypatch, capsys):
    use_tiny_checksums(monkeypatch, CIFAR10, make_tiny_cifar10(tmp_path, per_class=10))
    argv = ["--data_root", str(tmp_path), "--results_dir", str(tmp_path / "r"), "--pretrained_dir",
            str(tmp_path / "c"), "--model_arch", "salem_cnn_relu", "--epochs", "1", "--quiet", "--strict",
            "--train_set_size", "30", "--test_set_size", "20", "--attack_set_size", "10", "--train"]
    assert main("cifar10", argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and ("STL-10" in err or "stl10" in err) and len(err.splitlines()) == 1


def test_cifar10_without_checkpoints_says_how_to_get_them(tmp_path, monkeypatch, capsys):
    use_tiny_checksums(monkeypatch, CIFAR10, make_tiny_cifar10(tmp_path, per_class=10))
    argv = ["--data_root", str(tmp_path), "--results_dir", str(tmp_path / "r"), "--pretrained_dir",
            str(tmp_path / "none"), "--quiet", "--train_set_size", "30", "--test_set_size", "20",
            "--attack_set_size", "10"]
    assert main("cifar10", argv) == 2
    err = capsys.readouterr().err.strip()
    assert "download_pretrained_models.sh" in err and "--train" in err and len(err.splitlines()) == 1


def test_stanford_dogs_script_on_a_tiny_dog_folder(tmp_path, monkeypatch):
    use_tiny_dogs_and_afhq(tmp_path, monkeypatch)
    results = run_script("stanford_dogs", tmp_path, "--train", "--model_input_image_size", "32",
                         "--train_set_size", "20", "--test_set_size", "10", "--attack_set_size", "10")
    check_outputs(results, "salem_cnn_relu_stanford_dogs_", DOGS_ROWS, {"fake_dogs": "Fake Dogs"})
    recipe = json.loads((tmp_path / "checkpoints" / "salem_cnn_relu_stanford_dogs_target.json").read_text())
    assert recipe["augmented"] is True  # trained on the paper's random crop/flip/rotation transform
