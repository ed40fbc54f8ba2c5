"""Figures, the Markdown report and the shell scripts, on tiny synthetic inputs."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from reporting import (FalsePositiveCandidates, compare_with_paper, paper_table,
                       plot_false_positive_grid, plot_max_score_distributions, plot_roc_curves,
                       plot_tradeoff, write_report)
from reporting.tradeoff import tradeoff_points

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------------------------------- ROC
def test_roc_curves_write_one_file_per_attack(tmp_path, rng):
    members = rng.uniform(0.5, 1.0, 60)
    scores = {
        "Threshold": {"Original": (members, rng.uniform(0.0, 1.0, 50)),
                      "SVHN": (members, rng.uniform(0.9, 1.0, 40))},
        "Salem": {"Original": (torch.as_tensor(members), torch.rand(30))},
    }
    written = plot_roc_curves(scores, tmp_path / "figs", stem="resnet18_cifar10_")
    names = [path.name for path in written]
    assert names == ["resnet18_cifar10_roc_Threshold.png", "resnet18_cifar10_roc_Salem.png"]
    for path in written:
        assert_png(path)


def test_roc_curves_edge_cases(tmp_path):
    constant = np.ones(10)  # single-valued scores: one ROC step
    scores = {"Entropy Attack/x": {"Same": (constant, constant), "Empty": (constant, np.array([]))}}
    written = plot_roc_curves(scores, tmp_path)
    assert [p.name for p in written] == ["roc_Entropy_Attack_x.png"]
    for path in written:
        assert_png(path)


def test_roc_curves_reject_nan(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        plot_roc_curves({"Threshold": {"Bad": (np.array([np.nan, 1.0]), np.array([0.1]))}}, tmp_path)


# ------------------------------------------------------------------------------ distributions
def test_max_score_distributions(tmp_path, rng):
    path = plot_max_score_distributions(
        np.ones(40),  # a member set where every score is identical
        {"Original": rng.uniform(0.1, 1.0, 30), "Scaled": torch.ones(5), "Empty": np.array([])},
        tmp_path / "dist.png", title="resnet18_cifar10_")
    assert path == tmp_path / "dist.png"
    assert_png(path)


def test_max_score_distributions_without_sets(tmp_path):
    assert_png(plot_max_score_distributions(np.array([0.2, 0.9]), {}, tmp_path / "d.png"))


# ---------------------------------------------------------------------------- false positives
def _candidates(n: int, channels: int, flagged, class_names=None, seed: int = 0):
    generator = np.random.default_rng(seed)
    return FalsePositiveCandidates(
        images=generator.uniform(-0.2, 1.2, (n, channels, 8, 8)),  # out of range: clipped
        max_probs=generator.uniform(0.1, 1.0, n),
        predicted_member=np.asarray(flagged, dtype=bool),
        predicted_class=generator.integers(0, 3, n),
        class_names=class_names,
    )


def test_false_positive_grid_rows_and_edge_cases(tmp_path):
    candidates = {
        "Fake CIFAR-10": _candidates(12, 3, [True] * 10 + [False] * 2, ["cat", "dog", "ship"]),
        "Digits (greyscale)": _candidates(4, 1, [True, False, True, False]),
        "SVHN": _candidates(5, 3, [False] * 5),  # no false positives
        "Tensor": FalsePositiveCandidates(torch.rand(3, 3, 8, 8), torch.tensor([0.5, 0.9, 0.7]),
                                          torch.tensor([True, True, False]), torch.tensor([0, 0, 0]),
                                          ["only class"]),
    }
    path = plot_false_positive_grid(candidates, tmp_path / "fp.png", per_set=4)
    assert_png(path)


def test_false_positive_selection_is_most_confident_first():
    candidate = FalsePositiveCandidates(np.zeros((5, 1, 2, 2)), np.array([0.9, 0.99, 0.5, 0.95, 0.7]),
                                        np.array([True, False, True, True, True]), np.arange(5), None)
    assert candidate.top_false_positives(3).tolist() == [3, 0, 4]
    assert candidate.class_name(7) == "7"


@pytest.mark.parametrize("field, value, message", [
    ("images", np.zeros((3, 2, 4, 4)), "C 1 or 3"),
    ("predicted_member", np.array([1, 0, 1]), "bool"),
    ("max_probs", np.ones(2), "differ in length"),
])
def test_false_positive_candidates_validate(field, value, message):
    fields = dict(images=np.zeros((3, 3, 4, 4)), max_probs=np.ones(3),
                  predicted_member=np.ones(3, bool), predicted_class=np.zeros(3, int))
    fields[field] = value
    with pytest.raises(ValueError, match=message):
        FalsePositiveCandidates(**fields)


# ----------------------------------------------------------------------------------- tradeoff
def _write_run(folder: Path, stem: str, ece: float, fprs: dict[str, float], value_column="Value"):
    attacks = pd.DataFrame({"Threshold Attack FPR": fprs, "Threshold Attack Precision": 0.5})
    attacks.to_csv(folder / f"{stem}attack_results.csv")
    performance = pd.DataFrame({value_column: {"Train Acc. Target": 1.0, "ECE Target": ece}})
    performance.to_csv(folder / f"{stem}performance_results.csv")


def test_tradeoff_from_two_runs(tmp_path):
    _write_run(tmp_path, "resnet18_cifar10_", 0.20, {"Original": 0.45, "SVHN": 0.8, "CIFAR100": 0.6})
    _write_run(tmp_path, "resnet18_cifar10_LS_0.0083_", 0.05, {"Original": 0.24, "SVHN": 0.1, "CIFAR100": 0.3})
    (tmp_path / "orphan_attack_results.csv").write_text(",Threshold Attack FPR\nSVHN,0.5\n")
    points = {p.label: p for p in tradeoff_points(tmp_path)}
    assert set(points) == {"baseline", "LS_0.0083"}
    assert points["baseline"].mean_fpr == pytest.approx(0.7)
    assert points["LS_0.0083"].ece == pytest.approx(0.05)
    assert points["LS_0.0083"].group == "resnet18_cifar10"
    chosen = {p.label: p.mean_fpr for p in tradeoff_points(tmp_path, ood_sets=["SVHN", "Missing"])}
    assert chosen == pytest.approx({"baseline": 0.8, "LS_0.0083": 0.1})
    path = plot_tradeoff(tmp_path, tmp_path / "tradeoff.png")
    assert path == tmp_path / "tradeoff.png"
    assert_png(path)


def test_tradeoff_reads_the_papers_layout(tmp_path):
    points = {p.label: p for p in tradeoff_points(ROOT / "reporting" / "paper_results")}
    assert set(points) == {"baseline", "L2_0.001", "LLLA", "LS_0.1", "temp_10.0_calib"}
    assert points["baseline"].ece == pytest.approx(0.2509)  # first "ECE Target" row
    assert points["LLLA"].n_sets == 8  # every row but "Original"
    assert_png(plot_tradeoff(ROOT / "reporting" / "paper_results", tmp_path / "paper.png"))


def test_tradeoff_without_usable_runs(tmp_path):
    assert plot_tradeoff(tmp_path, tmp_path / "t.png") is None
    _write_run(tmp_path, "a_b_", 0.1, {"Original": 0.5}, value_column="Other")  # no OOD rows
    assert plot_tradeoff(tmp_path, tmp_path / "t.png") is None
    assert not (tmp_path / "t.png").exists()


# ------------------------------------------------------------------------------------- report
def test_report_sections_links_and_comparison(tmp_path):
    paper = paper_table("resnet18_cifar10_")
    ours = paper.drop(index="AFHQ Cats").copy() + 0.01
    ours["Threshold Attack TPR@1%FPR"] = 0.02
    ours.loc["Digits"] = 0.5
    comparison = compare_with_paper(ours, paper)
    run_dir = tmp_path / "results"
    figure = run_dir / "figures" / "roc threshold.png"
    figure.parent.mkdir(parents=True)
    figure.write_bytes(PNG_MAGIC)
    attack_csv = run_dir / "resnet18_cifar10_attack_results.csv"
    performance = pd.DataFrame({"Value": {"Train Acc. Target": 1.0, "ECE Target": 0.0321}})
    report = write_report(
        run_dir / "report.md", title="resnet18 on CIFAR-10",
        config={"model_arch": "resnet18", "train": {"lr": 0.01, "epochs": 100}, "sets": ["svhn", "a|b"]},
        performance=performance, attacks=ours, figures=[figure, run_dir / "gone.png"],
        skipped_sets={"Stanford Dogs": "files not found under data/stanford_dogs"},
        comparison=comparison, notes=["seed 42"], attack_csv=attack_csv)
    text = report.read_text()
    for heading in ("# resnet18 on CIFAR-10", "## Configuration", "## Model metrics", "## Attacks",
                    "### Threshold attack", "## Figures", "## Skipped non-member sets",
                    "## Comparison with the paper", "### Salem attack: ours - paper", "## Notes"):
        assert heading in text
    assert "| train.lr | 0.01 |" in text and "a\\|b" in text
    assert "| ECE Target | 0.0321 |" in text
    assert "![roc threshold](figures/roc%20threshold.png)" in text
    assert "gone.png (file missing)" in text
    assert "[resnet18_cifar10_attack_results.csv](resnet18_cifar10_attack_results.csv)" in text
    assert "| Stanford Dogs | files not found under data/stanford_dogs |" in text
    assert "+0.0100" in text
    assert "rows only in paper: AFHQ Cats" in text and "rows only in ours: Digits" in text
    assert "Threshold Attack TPR@1%FPR" in text  # listed as a column only in ours
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    assert stat.S_IMODE(report.stat().st_mode) & stat.S_IRUSR


def test_report_without_comparison_or_skips(tmp_path):
    attacks = pd.DataFrame({"Threshold Attack Precision": {"Original": 0.6}})
    report = write_report(tmp_path / "report.md", title="t", config={}, performance=pd.DataFrame(),
                          attacks=attacks, figures=[], skipped_sets={}, comparison=None)
    text = report.read_text()
    assert "No published table for this configuration." in text
    assert "None: every requested non-member set was evaluated." in text
    assert "## Notes" not in text


# -------------------------------------------------------------------------------- shell scripts
DOWNLOADERS = [name for name in ("curl", "wget") if shutil.which(name)]
needs_downloader = pytest.mark.skipif(not DOWNLOADERS, reason="neither curl nor wget is installed")


def _run_download(tmp_path: Path, url: str, dest: Path, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PRETRAINED_URL": url, "PRETRAINED_DIR": str(dest), **env}
    return subprocess.run(["bash", str(ROOT / "download_pretrained_models.sh")], env=environment,
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


@needs_downloader
@pytest.mark.parametrize("downloader", DOWNLOADERS)
@pytest.mark.parametrize("top_folder", ["", "pretrained_models/"])
def test_download_from_file_url_twice(tmp_path, downloader, top_folder):
    archive = tmp_path / "models.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr(f"{top_folder}resnet18_cifar10_target.pt", b"weights")
    dest = tmp_path / "pretrained_models"
    for _ in range(2):
        result = _run_download(tmp_path, archive.as_uri(), dest, PRETRAINED_DOWNLOADER=downloader)
        assert result.returncode == 0, result.stderr
        assert (dest / "resnet18_cifar10_target.pt").read_bytes() == b"weights"
        assert "MD5" in result.stdout
    assert "already present" in result.stdout
    assert not [p.name for p in dest.iterdir() if p.name.startswith(".") or p.suffix == ".part"]


@needs_downloader
@pytest.mark.parametrize("downloader", DOWNLOADERS)
def test_download_offline_fails_with_one_line(tmp_path, downloader):
    dest = tmp_path / "out"
    result = _run_download(tmp_path, "http://127.0.0.1:9/x.zip", dest, PRETRAINED_DOWNLOADER=downloader)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: could not download"), result.stderr
    assert not any(dest.iterdir())


@needs_downloader
def test_download_rejects_a_file_that_is_not_a_zip(tmp_path):
    page = tmp_path / "error.html"
    page.write_text("<html>quota exceeded</html>")
    result = _run_download(tmp_path, page.as_uri(), tmp_path / "out")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a valid zip" in lines[0]


def test_docker_build_needs_a_name_and_calls_docker(tmp_path):
    script = str(ROOT / "docker_build.sh")
    usage = subprocess.run(["bash", script], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2 and usage.stderr.startswith("usage:")
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text('#!/usr/bin/env bash\necho "docker $*" > "$FAKE_DOCKER_LOG"\nls "${@: -1}" >> "$FAKE_DOCKER_LOG"\n')
    fake.chmod(0o755)
    log = tmp_path / "log"
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}", "FAKE_DOCKER_LOG": str(log)}
    built = subprocess.run(["bash", script, "-n", "confidence_mi"], capture_output=True, text=True,
                           timeout=30, env=env)
    assert built.returncode == 0, built.stderr
    recorded = log.read_text().split()
    assert recorded[:4] == ["docker", "build", "-t", "confidence_mi"]
    assert sorted(recorded[5:]) == ["Dockerfile", "requirements.txt"]  # the minimal build context


@pytest.mark.parametrize("argv, status", [(["--help"], 0), (["-h"], 0), (["--train"], 2), (["extra"], 2)])
def test_download_script_usage_downloads_nothing(tmp_path, argv, status):
    dest = tmp_path / "dest"
    environment = {**os.environ, "PRETRAINED_URL": "file:///nonexistent.zip", "PRETRAINED_DIR": str(dest)}
    result = subprocess.run(["bash", str(ROOT / "download_pretrained_models.sh"), *argv], env=environment,
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == status
    usage = result.stdout if status == 0 else result.stderr
    assert usage.count("Usage: bash download_pretrained_models.sh") == 1
    if status:
        assert f"unknown argument '{argv[0]}'; nothing was downloaded" in result.stderr
    assert "Downloading" not in result.stdout and not dest.exists()
