"""docs/audit_your_model.md's examples run as written, in order, in a folder outside the repository."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest


ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "audit_your_model.md"
BLOCK = re.compile(r"```(python|bash)\n(.*?)```", re.S)
FILE_MARKER = re.compile(r"^# (\S+\.py)\n")
QUICK = {"MAX_ITER": "50", "EPOCHS": "8"}   # the quick sizes the doc names


def blocks():
    return [(kind, text) for kind, text in BLOCK.findall(DOC.read_text())]


def test_the_doc_has_the_three_examples():
    text = DOC.read_text()
    assert " ".join(f"{k}={v}" for k, v in QUICK.items()) in text
    for needle in ("predict_proba", "def make_model", "member_images", "--train_fn", "--scores"):
        assert needle in text


def test_examples_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **QUICK}
    for index, (kind, text) in enumerate(blocks()):
        marker = FILE_MARKER.match(text)
        if kind == "python" and marker:
            path = tmp_path / marker.group(1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            (path.parent / "__init__.py").touch()
            continue
        if kind == "python":
            argv = [sys.executable, "-c", text]
        else:
            command = shlex.split(text.replace("\\\n", " "))
            assert command[:2] == ["python", "experiments/audit.py"], command
            # figures: the Python blocks write them through the same writer; here they only cost time
            argv = [sys.executable, str(ROOT / "experiments" / "audit.py"), *command[2:], "--no_figures"]
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(tmp_path)])
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"block {index} ({kind}):\n{text}\n{done.stderr[-3000:]}"
    sklearn = pd.read_csv(tmp_path / "sklearn_audit" / "mlp_digits_attack_results.csv", index_col=0)
    assert list(sklearn.index) == ["Original", "Noise"] and "LiRA Attack AUROC" in sklearn
    assert (tmp_path / "sklearn_audit" / "mlp_digits_held_out_fpr_results.csv").is_file()
    lira = pd.read_csv(tmp_path / "torch_audit" / "digits_cnn_lira_attack_results.csv", index_col=0)
    assert lira.loc["Original", "LiRA Attack AUROC"] > 0.5
    for known in (tmp_path / "known_audit" / "mlp_digits_known_attack_results.csv",
                  tmp_path / "known_audit" / "digits_cnn_known_attack_results.csv"):   # members and non-members only
        table = pd.read_csv(known, index_col=0)
        assert table["Threshold Attack AUROC"].notna().all() and "LOSS Attack AUROC" in table
    thresholds = pd.read_csv(tmp_path / "known_audit" / "mlp_digits_known_attack_thresholds.csv", index_col=0)
    assert set(thresholds["threshold source"]) == {"population"}
    assert "Noise" in pd.read_csv(tmp_path / "known_audit" / "digits_cnn_known_attack_results.csv", index_col=0).index
    folder = pd.read_csv(tmp_path / "folder_audit" / "digits_cnn_attack_results.csv", index_col=0)
    assert "Random pixels" in folder.index
