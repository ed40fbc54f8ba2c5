"""The experiment scripts' flags and their one-line errors."""
import subprocess
import sys
from pathlib import Path

import pytest

from configuration.cli import build_parser
from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAPER_FLAGS = ("--train", "--pretrained", "--seed", "--model_arch", "--epochs", "--train_set_size",
               "--test_set_size", "--batch_size", "--model_input_image_size", "--attack_set_size",
               "--salem_k", "--label_smoothing", "--label_smoothing_factor", "--weight_decay", "--llla",
               "--temp_scaling", "--temp_value", "--data_root", "--results_dir", "--device", "--sets",
               "--strict")


@pytest.mark.parametrize("dataset", ["digits", "cifar10", "stanford_dogs"])
def test_every_paper_flag_is_documented(dataset):
    text = build_parser(dataset).format_help()
    for flag in PAPER_FLAGS:
        assert flag in text, flag


@pytest.mark.parametrize("argv, message", [
    (["--attack_set_size", "5000"], "--attack_set_size 5000 is larger than --train_set_size"),
    (["--train_set_size", "1000", "--attack_set_size", "100"], "--train_set_size"),
    (["--sets", "original", "nonsense"], "unknown data set 'nonsense'"),
    (["--attacks", "threshold", "magic"], "unknown attack 'magic'"),
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--model_arch", "vgg99"], "unknown model architecture 'vgg99'"),
    (["--device", "cuda:7"] , "--device"),
])
def test_bad_input_is_one_line(argv, message, tmp_path, capsys):
    code = main("digits", argv + ["--epochs", "1", "--results_dir", str(tmp_path), "--pretrained_dir",
                                  str(tmp_path), "--quiet", "--no_figures"]
                if "--epochs" not in argv else argv + ["--results_dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and message in err, err


@pytest.mark.slow
def test_script_help_runs_from_repo_root():
    completed = subprocess.run([sys.executable, "experiments/digits_experiments.py", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0 and "--attack_set_size" in completed.stdout
