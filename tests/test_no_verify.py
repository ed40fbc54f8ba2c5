"""--no_verify: data whose checksums differ is an error naming the flag, or accepted with a warning
that the run's manifest records."""
from __future__ import annotations

import json
import logging

import pytest

from datasets import ChecksumError, DataRequest, build_dataset
from datasets import sources
from datasets.domain import CIFAR10 as CIFAR10_DOMAIN
from datasets.verification import recording_accepted_mismatches
from pipeline.cli import main
from tests.fixtures_data import make_tiny_afhq, make_tiny_cifar10


def request(root, verify: bool) -> DataRequest:
    return DataRequest(CIFAR10_DOMAIN, data_root=root, split="train", verify_checksums=verify)


def test_folder_checksum_mismatch_names_the_flag_or_is_recorded(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sources.FOLDER_MD5, "afhq", make_tiny_afhq(tmp_path)["folder_md5"]["afhq"])
    next((tmp_path / "afhq" / "train" / "dog").iterdir()).write_bytes(b"changed")
    with pytest.raises(ChecksumError, match=r"AFHQ Dogs: folder .* unzip afhq.zip again, or pass --no_verify"):
        build_dataset("afhq_dogs", request(tmp_path, verify=True))
    with caplog.at_level(logging.WARNING), recording_accepted_mismatches() as accepted:
        named = build_dataset("afhq_dogs", request(tmp_path, verify=False))
    assert len(named) == 3
    assert len(accepted) == 1 and "AFHQ Dogs: folder" in accepted[0]
    assert "--no_verify" in caplog.text and "using it anyway" in caplog.text


def test_torchvision_files_with_other_md5s(tmp_path, caplog):
    make_tiny_cifar10(tmp_path, per_class=1)  # tiny files: torchvision's published MD5s differ
    with pytest.raises(ChecksumError, match=r"data_batch_1 has md5 .*, or pass --no_verify to use this copy"):
        build_dataset("cifar10", request(tmp_path, verify=True))
    with caplog.at_level(logging.WARNING), recording_accepted_mismatches() as accepted:
        named = build_dataset("cifar10", request(tmp_path, verify=False))
    assert len(named) == 10 and named.dataset[0][0].shape == (3, 32, 32)
    assert any("data_batch_1 has md5" in message for message in accepted)
    assert "--no_verify" in caplog.text
    with pytest.raises(ChecksumError):  # torchvision's own checks are back afterwards
        build_dataset("cifar10", request(tmp_path, verify=True))


def test_script_with_no_verify_records_the_mismatches(tmp_path, capsys):
    make_tiny_cifar10(tmp_path, per_class=10)
    argv = ["--data_root", str(tmp_path), "--results_dir", str(tmp_path / "results"), "--pretrained_dir",
            str(tmp_path / "checkpoints"), "--model_arch", "salem_cnn_relu", "--epochs", "1", "--quiet",
            "--no_figures", "--train", "--train_set_size", "30", "--test_set_size", "20",
            "--attack_set_size", "10", "--sets", "original", "scaled"]
    assert main("cifar10", argv) == 2
    error = capsys.readouterr().err.strip()
    assert "--no_verify" in error and len(error.splitlines()) == 1
    assert main("cifar10", argv + ["--no_verify"]) == 0
    manifest = json.loads((tmp_path / "results" / "salem_cnn_relu_cifar10_manifest.json").read_text())
    assert manifest["config"]["verify_checksums"] is False
    accepted = manifest["notes"]["no_verify"]["accepted_checksum_mismatches"]
    assert any("CIFAR-10" in message and "md5" in message for message in accepted)
