"""End to end: a preset run and the scores route agree byte for byte; a "user project" outside the
repository, with only the package installed, runs every route through the CLI and the Python call."""
import filecmp
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from membership_audit.cli import main
from configuration.config import config_from_preset
from pipeline.run import run_experiment
from utils.seeding import derive_seed

pytestmark = pytest.mark.slow  # trains models, installs the package

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))   # every top-level package


def test_scores_route_gives_the_preset_runs_attack_csv(tmp_path):
    config = config_from_preset("digits", epochs=3, train_set_size=120, test_set_size=120, attack_set_size=60,
                                batch_size=32, progress=False, figures=False, results_dir=str(tmp_path / "preset"),
                                pretrained_dir=str(tmp_path / "checkpoints"),
                                sets=("original", "permuted", "scaled", "noise"))
    run = run_experiment(config)
    target, shadow = run.target_scores, run.shadow_scores
    arrays = {"member_probs": target["Members"].probs, "member_labels": target["Members"].labels,
              "non_member_probs": target["Original"].probs, "non_member_labels": target["Original"].labels,
              "shadow_member_probs": shadow["Members"].probs, "shadow_member_labels": shadow["Members"].labels,
              "shadow_non_member_probs": shadow["Original"].probs,
              "shadow_non_member_labels": shadow["Original"].labels}
    for name in ("Permuted", "Scaled", "Noise"):
        arrays[f"set_{name}_probs"] = target[name].probs
        if target[name].in_label_space:
            arrays[f"set_{name}_labels"] = target[name].labels
    np.savez(tmp_path / "scores.npz", **arrays)
    assert main(["--scores", str(tmp_path / "scores.npz"), "--attacks", *config.attacks, "--no_figures",
                 "--results_dir", str(tmp_path / "audit"), "--name", "digits"]) == 0
    assert filecmp.cmp(run.files["attack_results"], tmp_path / "audit" / "digits_attack_results.csv", shallow=False)
    preset_samples = pd.read_csv(run.files["sample_scores"])
    audit_samples = pd.read_csv(tmp_path / "audit" / "digits_sample_scores.csv")
    assert len(preset_samples) == len(audit_samples) == 60 * 5
    score_columns = [c for c in preset_samples if c.endswith((" score", " decision"))]
    pd.testing.assert_frame_equal(preset_samples[score_columns], audit_samples[score_columns])


MODELS_PY = """
import torch
from torch import nn


def make_model():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                         nn.Linear(128, 3))


def train(model, images, labels, seed):
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(4):
        for batch in torch.randperm(len(labels), generator=generator).split(16):
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimiser.step()


def broken(model, images, labels, seed):
    train(model, images, labels, seed)
    if seed == FAILING_SEED:
        raise RuntimeError("CUDA out of memory (simulated)")
"""

MAKE_DATA_PY = """
import numpy as np
import torch
from PIL import Image
from pathlib import Path
from sklearn.linear_model import LogisticRegression
from user_project.models import make_model, train

rng = np.random.default_rng(0)
def folder(root, n):
    for c in range(3):
        (Path(root) / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = (rng.random((12, 12, 3)) * 90 + c * 80).astype(np.uint8)
            Image.fromarray(pixels).save(Path(root) / f"class{c}" / f"{i:03d}.png")
for name, n in (("members", 12), ("non_members", 12), ("shadow_members", 12), ("shadow_non_members", 12),
                ("held_out", 8)):
    folder(name, n)
Path("ood").mkdir()
for i in range(20):
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(f"ood/{i}.png")
for role in ("target", "shadow"):
    torch.manual_seed(len(role))
    torch.save(make_model().state_dict(), f"{role}.pt")

# a scikit-learn classifier's scores: the package made none of them
x, y = rng.normal(size=(400, 20)), rng.integers(0, 3, 400)
x[np.arange(400), y] += 1.0
def fit(rows):
    return LogisticRegression(max_iter=500).fit(x[rows], y[rows])
target, shadow = fit(np.arange(0, 100)), fit(np.arange(200, 300))
np.savez("sklearn_scores.npz",
         member_probs=target.predict_proba(x[:100]), member_labels=y[:100],
         non_member_probs=target.predict_proba(x[100:200]), non_member_labels=y[100:200],
         shadow_member_probs=shadow.predict_proba(x[200:300]), shadow_member_labels=y[200:300],
         shadow_non_member_probs=shadow.predict_proba(x[300:]), shadow_non_member_labels=y[300:],
         set_Shifted_probs=target.predict_proba(x[100:200] * 5))
"""

PYTHON_CALL_PY = """
from membership_audit import audit_model, audit_scores
import membership_audit, sys
assert "site" in membership_audit.__file__, membership_audit.__file__
audit_scores("sklearn_scores.npz").write("python_out", name="sklearn", figures=False)
audit_model("user_project.models:make_model", "members", "non_members", checkpoint="target.pt",
            ood_data={"Noise": "ood"}, held_out_data="held_out", shadow_checkpoint="shadow.pt",
            shadow_member_data="shadow_members", shadow_non_member_data="shadow_non_members",
            image_size=12, normalize=((0.5,), (0.5,)), reference_models=4, train_fn="user_project.models:train",
            reference_dir="cli_out/reference_models", name="cnn").write("python_out", name="cnn", figures=False)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The installed package (in ``site/``) and a user project beside it; returns (folder, env)."""
    base = tmp_path_factory.mktemp("user")
    source = base / "src"
    source.mkdir()
    for name in PACKAGES:
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(base / "site"), str(source)], check=True, capture_output=True, timeout=300)
    folder = base / "project"
    (folder / "user_project").mkdir(parents=True)
    (folder / "user_project" / "__init__.py").touch()
    failing = derive_seed(42, "reference_2", "train")
    (folder / "user_project" / "models.py").write_text(MODELS_PY.replace("FAILING_SEED", str(failing)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(base / "site"), str(folder)]), "OMP_NUM_THREADS": "1"}
    for script, text in (("make_data.py", MAKE_DATA_PY), ("python_call.py", PYTHON_CALL_PY)):
        (folder / script).write_text(textwrap.dedent(text))
    subprocess.run([sys.executable, "make_data.py"], cwd=folder, env=env, check=True, timeout=300)
    return folder, env


def cli(project, *argv):
    folder, env = project
    return subprocess.run([sys.executable, "-m", "membership_audit", *argv], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


MODEL_ARGS = ("--model", "user_project.models:make_model", "--checkpoint", "target.pt", "--member_data", "members",
              "--non_member_data", "non_members", "--ood_data", "Noise=ood", "--held_out_data", "held_out",
              "--shadow_checkpoint", "shadow.pt", "--shadow_member_data", "shadow_members",
              "--shadow_non_member_data", "shadow_non_members", "--image_size", "12", "--normalize", "0.5", "0.5")


def check_samples_agree(folder: Path, name: str, table: pd.DataFrame) -> None:
    """Per-sample truth and decisions give the CSV's recall and FPR."""
    samples = pd.read_csv(folder / f"{name}_sample_scores.csv")
    assert samples.groupby("set")["member"].all().to_dict() == {s: s == "Members" for s in samples["set"].unique()}
    attacks = [c[: -len(" decision")] for c in samples if c.endswith(" decision")]
    assert attacks
    for attack in attacks:
        decided = samples.groupby("set")[f"{attack} decision"].mean()
        for row in table.index:
            if not np.isnan(table.loc[row, f"{attack} Attack FPR"]):
                assert decided[row] == pytest.approx(table.loc[row, f"{attack} Attack FPR"], abs=5e-5)
                assert decided["Members"] == pytest.approx(table.loc[row, f"{attack} Attack Recall"], abs=5e-5)  # CSV: 4 decimals


def test_every_route_through_the_cli_and_the_python_call(project):
    folder, env = project
    done = cli(project, "--scores", "sklearn_scores.npz", "--results_dir", "cli_out", "--name", "sklearn",
               "--no_figures")
    assert done.returncode == 0, done.stderr
    sklearn = pd.read_csv(folder / "cli_out" / "sklearn_attack_results.csv", index_col=0)
    assert list(sklearn.index) == ["Original", "Shifted"] and sklearn.loc["Original", "Threshold Attack AUROC"] > 0.5
    assert "LiRA" in sklearn.loc["Original", "Skipped"]
    check_samples_agree(folder / "cli_out", "sklearn", sklearn)

    done = cli(project, *MODEL_ARGS, "--reference_models", "4", "--train_fn", "user_project.models:train",
               "--results_dir", "cli_out", "--name", "cnn")
    assert done.returncode == 0, done.stderr
    cnn = pd.read_csv(folder / "cli_out" / "cnn_attack_results.csv", index_col=0)
    assert list(cnn.index) == ["Original", "Permuted", "Scaled", "No Normalization", "Noise"]
    for attack in ("Threshold", "Salem", "Entropy", "Shokri", "LiRA", "LiRA Offline"):
        assert cnn[f"{attack} Attack AUROC"].notna().all(), attack
    assert "RMIA Attack AUROC" not in cnn
    assert "RMIA" in cnn.loc["Original", "Skipped"]              # no --population_data
    check_samples_agree(folder / "cli_out", "cnn", cnn)
    report = (folder / "cli_out" / "cnn_report.md").read_text()
    assert "Are the attacks fooled by OOD and fake data?" in report and "cnn_sample_scores.csv" in report
    manifest = json.loads((folder / "cli_out" / "cnn_manifest.json").read_text())
    assert "cnn_held_out_fpr_results.csv" in manifest["files"]
    assert manifest["notes"]["reference_pool"]["trained"] == 4

    done = subprocess.run([sys.executable, "python_call.py"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    for name in ("sklearn", "cnn"):      # the Python call loads the CLI's reference models: same numbers
        assert filecmp.cmp(folder / "cli_out" / f"{name}_attack_results.csv",
                           folder / "python_out" / f"{name}_attack_results.csv", shallow=False), name
        assert filecmp.cmp(folder / "cli_out" / f"{name}_sample_scores.csv",
                           folder / "python_out" / f"{name}_sample_scores.csv", shallow=False), name


def test_a_train_fn_that_raises_names_the_model_and_keeps_the_finished_models(project):
    folder, _ = project
    done = cli(project, *MODEL_ARGS, "--reference_models", "4", "--train_fn", "user_project.models:broken",
               "--results_dir", "broken_out", "--attacks", "lira")
    assert done.returncode == 2
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: --train_fn user_project.models:broken failed: reference model(s) 2: "), done.stderr
    assert "raised on reference model 2: RuntimeError: CUDA out of memory (simulated)" in error, error
    kept = int(error.split("; ")[-1].split(" ")[0])
    assert kept == 3   # the pool trains the other models, one per step, and keeps them
    assert len(list((folder / "broken_out" / "reference_models").rglob("reference_*.pt"))) == kept   # in its pool
    assert not list((folder / "broken_out").glob("*_attack_results.csv"))
