"""One line, a non-zero exit and nothing half-written (issue 18, "One line instead of a
traceback"): an overflowing optimiser, NaN weights in a checkpoint, a truncated or empty CIFAR
batch under --no_verify, a full disk."""
from __future__ import annotations

import errno
import io
import json
import shutil
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch

from datasets import CIFAR10 as CIFAR10_DOMAIN
from datasets import DataRequest, build_dataset
from datasets.errors import DamagedFileError
from models.checkpoints import WEIGHTS_KEY, CheckpointError, load_checkpoint
from pipeline.cli import main
from tests.fixtures_data import make_tiny_cifar10
from utils import files as files_module
from utils.files import DiskFullError, atomic_open, sha256_file

TINY_FLAGS = ["--epochs", "1", "--train_set_size", "60", "--test_set_size", "60", "--attack_set_size", "30",
              "--sets", "original", "scaled", "--attacks", "threshold", "entropy", "--quiet",
              "--reference_models", "0", "--no_figures"]


def cli(results: Path, checkpoints: Path, *flags: str, dataset: str = "digits") -> tuple[int, list[str]]:
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = main(dataset, [*TINY_FLAGS, "--results_dir", str(results), "--pretrained_dir", str(checkpoints),
                              *flags])
    return code, err.getvalue().strip().splitlines()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()} if folder.exists() else {}


def half_written(*folders: Path) -> list[str]:
    return [p.name for folder in folders if folder.exists() for p in folder.rglob("*")
            if p.name.endswith(".tmp") or p.name.startswith(".staging-") or p.name.endswith(".pt.lock")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("trained")
    code, err = cli(base / "results", base / "checkpoints")
    assert code == 0, err
    return base / "checkpoints"


def copy(trained: Path, tmp_path: Path) -> Path:
    shutil.copytree(trained, tmp_path / "checkpoints")
    return tmp_path / "checkpoints"


def test_an_overflowing_optimiser_is_one_line_and_keeps_the_checkpoints(trained, tmp_path):
    checkpoints = copy(trained, tmp_path)
    before = snapshot(checkpoints)
    code, err = cli(tmp_path / "results", checkpoints, "--lr", "1e38", "--train")
    assert code == 2 and len(err) == 1, err
    assert "train target: the optimiser overflowed" in err[0] and "--lr" in err[0] and "1e+38" in err[0]
    assert snapshot(checkpoints) == before and not half_written(checkpoints, tmp_path / "results")
    assert not list((tmp_path / "results").glob("*.csv"))


def test_nan_weights_in_a_checkpoint_name_the_file_and_the_model(trained, tmp_path):
    checkpoints = copy(trained, tmp_path)
    path = checkpoints / "small_cnn_digits_shadow.pt"
    state = torch.load(path, weights_only=True)
    name = next(key for key, value in state.items() if value.is_floating_point())
    state[name].view(-1)[0] = float("nan")
    torch.save(state, path)
    recorded = json.loads(path.with_suffix(".json").read_text())
    recorded[WEIGHTS_KEY] = sha256_file(path)  # a consistent pair: the weights themselves are bad
    path.with_suffix(".json").write_text(json.dumps(recorded))
    before = snapshot(checkpoints)
    code, err = cli(tmp_path / "results", checkpoints)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: shadow model: checkpoint ") and str(path) in err[0], err
    assert f"NaN or inf weights ({name})" in err[0] and "--train" in err[0]
    assert snapshot(checkpoints) == before and not half_written(checkpoints, tmp_path / "results")
    from models import build_model
    with pytest.raises(CheckpointError, match="NaN or inf weights"):
        load_checkpoint(build_model("small_cnn", num_classes=10, in_channels=1, image_size=8), path)


@pytest.mark.parametrize("damage", ["truncated", "empty", "not_a_pickle", "wrong_content"])
def test_a_damaged_cifar_batch_under_no_verify_is_one_line_naming_it(tmp_path, damage):
    make_tiny_cifar10(tmp_path, per_class=10)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "not_a_pickle": b"\x00" * 64,
                      "wrong_content": __import__("pickle").dumps({"data": [1, 2, 3]})}[damage])
    request = DataRequest(CIFAR10_DOMAIN, data_root=tmp_path, split="train", verify_checksums=False)
    with pytest.raises(DamagedFileError) as caught:
        build_dataset("cifar10", request)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert "cs.toronto.edu" in str(caught.value)
    code, err = cli(tmp_path / "results", tmp_path / "checkpoints", "--data_root", str(tmp_path),
                    "--model_arch", "salem_cnn_relu", "--train", "--no_verify", "--sets", "original",
                    dataset="cifar10")
    errors = [line for line in err if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and str(path) in errors[0], err
    assert all(line.startswith(("error:", "WARNING:")) for line in err), err  # no traceback
    assert not (tmp_path / "checkpoints").exists() and not half_written(tmp_path / "results")


def fill_disk(monkeypatch, *where: str) -> None:
    """Every new file in a folder whose path contains one of ``where`` fails with ENOSPC (simulated)."""
    real_mkstemp = files_module.tempfile.mkstemp

    def full(*args, dir=None, **kwargs):
        if dir is not None and any(part in str(dir) for part in where):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(files_module.tempfile, "mkstemp", full)


def test_a_full_disk_while_writing_names_the_folder(tmp_path, monkeypatch):
    results = tmp_path / "results"
    fill_disk(monkeypatch, str(results / ".staging-"), str(tmp_path / "full"))  # fills up during the run
    with pytest.raises(DiskFullError) as caught:
        with atomic_open(tmp_path / "full" / "table.csv") as handle:
            handle.write("x")
    assert str(tmp_path / "full") in str(caught.value) and caught.value.errno == errno.ENOSPC
    code, err = cli(results, tmp_path / "checkpoints")
    errors = [line for line in err if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "no space left on the device of" in errors[0], err
    assert str(results) in errors[0], err
    assert not list(results.glob("*.csv")) and not half_written(results)


def test_a_full_disk_before_any_work_names_the_flag_folder(tmp_path, monkeypatch):
    (tmp_path / "results").mkdir()
    fill_disk(monkeypatch, str(tmp_path / "results"))
    code, err = cli(tmp_path / "results", tmp_path / "checkpoints")
    assert code == 2 and len(err) == 1 and f"no space left on the device of {tmp_path / 'results'}" in err[0], err
    assert not (tmp_path / "checkpoints").exists()


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 300 KB tmpfs (root only): a real full disk."""
    folder = tmp_path / "small_disk"
    folder.mkdir()
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root); the simulated test covers it")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_a_real_full_disk_names_the_folder_and_half_writes_nothing(tmp_path, small_tmpfs):
    checkpoints = small_tmpfs / "checkpoints"  # the target checkpoint fits, the shadow does not
    code, err = cli(tmp_path / "results", checkpoints)
    errors = [line for line in err if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert f"no space left on the device of {checkpoints}" in errors[0], err
    assert not half_written(checkpoints, tmp_path / "results")
    for weights in checkpoints.glob("*.pt"):  # whatever is there is a whole, matching pair
        assert json.loads(weights.with_suffix(".json").read_text())[WEIGHTS_KEY] == sha256_file(weights)
