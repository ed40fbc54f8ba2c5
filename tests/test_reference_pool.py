"""Tests of models/reference_pool.py, the pool's plan and executors (models/pool_plan.py, pool_executor.py,
ray_pool.py) and the pool inside a run (Ray runs here)."""
from __future__ import annotations

import json
from dataclasses import replace
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models.checkpoints import config_path, fingerprint
from models.batched_training import batchable, chunk_size, train_stacked
from models.reference_pool import (PoolRecordError, ReferenceModelSpec, ReferencePool, balanced_membership,
                                   check_same_architecture, train_chunk, train_reference_model)
from models.training import TrainConfig
from pipeline.cli import main
from configuration.config import config_from_preset
from models.pool_executor import train_pool
from models.pool_plan import Machine, machine, plan_chunks, plan_pool
from models.ray_pool import check_address
from pipeline.run import run_experiment


def tiny_specs(k=3, epochs=1):
    recipe = TrainConfig(epochs=epochs, batch_size=16, lr=0.01, seed=5).to_dict()
    return [ReferenceModelSpec(i, "small_cnn", 10, 1, 8, recipe, 100 + i, "pop", f"rows{i}") for i in range(k)]


def tiny_population(n=48):
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 8, 8, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def test_balanced_membership_gives_every_sample_half_the_models():
    membership = balanced_membership(8, 1000, seed=3)
    assert membership.shape == (8, 1000) and membership.dtype == bool
    assert (membership.sum(axis=0) == 4).all()
    assert np.abs(membership.sum(axis=1) - 500).max() < 60
    np.testing.assert_array_equal(membership, balanced_membership(8, 1000, seed=3))
    assert not np.array_equal(membership, balanced_membership(8, 1000, seed=4))
    odd = balanced_membership(3, 1000, seed=0).sum(axis=0)
    assert set(np.unique(odd)) == {1, 2}


def tiny_pool(directory, specs, k_rows=48):
    membership = np.zeros((len(specs), k_rows), dtype=bool)
    for spec in specs:
        membership[spec.index, spec.index::2] = True
    return ReferencePool(directory, "small_cnn", "digits", "", specs, membership)


def test_pool_checkpoints_resume_and_reject_another_architecture(tmp_path):
    spec = tiny_specs(1)[0]
    pool = tiny_pool(tmp_path, [spec])
    pool.open()
    images, labels = tiny_population()
    assert pool.load_trained(spec) is None
    result = train_reference_model(spec, images, labels, np.arange(20))
    model, digest = pool.save(spec, result["state_dict"])
    loaded = pool.load_trained(spec)
    assert fingerprint(loaded) == digest == fingerprint(model)
    other = ReferenceModelSpec(**{**spec.__dict__, "members_sha256": "other rows"})
    assert tiny_pool(tmp_path, [other]).directory != pool.directory     # another pool: another folder
    with pytest.raises(PoolRecordError, match="was made for another pool"):
        pool.load_trained(other)
    saved = json.loads(config_path(pool.path(0)).read_text())
    config_path(pool.path(0)).write_text(json.dumps({**saved, "arch": "resnet18"}))
    with pytest.raises(ValueError, match=r"is a 'resnet18' model but the target is 'small_cnn'") as error:
        pool.load_trained(spec)
    assert "\n" not in str(error.value)
    salem = ReferenceModelSpec(**{**spec.__dict__, "arch": "salem_cnn_relu"}).build()
    with pytest.raises(ValueError, match="reference models must share the target's architecture"):
        check_same_architecture(model, salem)


@pytest.mark.parametrize("arch, channels, size, epochs, amp, tolerance", [
    ("small_cnn", 1, 8, 2, False, 1e-4), ("salem_cnn_relu", 3, 32, 2, False, 1e-4),
    ("small_cnn", 1, 8, 1, True, 0.15)])   # --amp: bf16 autocast in both paths rounds at ~4e-3 per step;
                                            # after one epoch up to 0.06 apart where training moved logits 0.5-0.9
def test_batched_chunk_gives_each_model_the_logits_it_gets_alone(arch, channels, size, epochs, amp, tolerance):
    """Same seeds -> same models within 1e-4 (float32), with training sets of different sizes (a short
    last batch, fewer batches per epoch than the chunk's longest). The batched kernels round
    differently from the single-model ones (grouped conv, bmm), and Adam amplifies those 1e-7
    differences over many epochs, so the check is over a few epochs (see models/batched_training.py)."""
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(90, channels, size, size, generator=generator)
    labels = torch.randint(0, 10, (90,), generator=generator)
    rows = [np.arange(0, 90, 2), np.arange(1, 61), np.arange(10, 27)]          # 45, 60 and 17 rows
    recipe = dict(epochs=epochs, batch_size=16, lr=0.01 if arch == "small_cnn" else 0.001, weight_decay=1e-4, amp=amp)
    specs = [ReferenceModelSpec(k, arch, 10, channels, size, TrainConfig(**recipe, seed=7 + k).to_dict(),
                                200 + k, "pop", f"rows{k}") for k in range(3)]
    assert batchable(specs[0].build(), TrainConfig(**recipe)) is None
    outcome = train_chunk(specs, images, labels, rows)
    assert outcome["batched"] and outcome["failed"] is None
    for spec, spec_rows, result in zip(specs, rows, outcome["results"]):
        alone = train_reference_model(spec, images, labels, spec_rows)["state_dict"]
        batched_model, alone_model = spec.build(), spec.build()
        batched_model.load_state_dict(result["state_dict"])
        alone_model.load_state_dict(alone)
        with torch.no_grad():
            difference = (batched_model(images) - alone_model(images)).abs().max().item()
        assert difference < tolerance, (spec.index, difference)
        assert not torch.equal(result["state_dict"]["fc.weight" if arch == "small_cnn" else "out.weight"],
                               spec.build().state_dict()["fc.weight" if arch == "small_cnn" else "out.weight"])


def test_chunk_size_follows_memory_and_models_with_buffers_fall_back():
    model = tiny_specs(1)[0].build()
    sample = torch.zeros(1, 8, 8)
    assert chunk_size(model, sample, 32, available=10**12) == 64                # capped
    assert chunk_size(model, sample, 32, available=1) == 1                       # at least one
    small, large = chunk_size(model, sample, 32, available=10**7), chunk_size(model, sample, 32, available=10**8)
    assert 1 <= small < large
    bn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    assert "BatchNorm" in batchable(bn, TrainConfig())
    assert batchable(model, TrainConfig(dp_epsilon=8.0)).startswith("DP-SGD")
    assert plan_chunks(64, 2, 64) == [list(range(32)), list(range(32, 64))]
    assert sorted(len(c) for c in plan_chunks(10, 2, 3)) == [2, 2, 3, 3] and plan_chunks(1, 4, 8) == [[0]]


def test_the_plan_is_a_pure_function_of_the_configuration_and_the_hardware():
    two = Machine(cpus=2)
    plan = plan_pool(16, two, max_chunk=64)
    assert plan == plan_pool(16, Machine(cpus=2), max_chunk=64)                    # nothing timed, nothing else read
    assert (plan.backend, plan.workers, plan.batched) == ("processes", 2, True) and plan.chunks(16) == [
        list(range(8)), list(range(8, 16))]
    assert plan_pool(16, Machine(cpus=1), max_chunk=64).backend == "here"          # one core: this process
    assert plan_pool(16, two, max_chunk=64, pool_workers=1).backend == "here"
    assert plan_pool(16, two, max_chunk=64, backend="here").chunks(16) == [list(range(16))]
    assert plan_pool(16, two, max_chunk=4, backend="here").chunks(16) == [[0, 1, 2, 3], [4, 5, 6, 7],
                                                                        [8, 9, 10, 11], [12, 13, 14, 15]]
    assert plan_pool(16, Machine(cpus=8), max_chunk=64, pool_workers=3).workers == 3
    one = plan_pool(3, two, max_chunk=64, one_per_step="it has buffers (BatchNorm)")
    assert not one.batched and one.chunks(3) == [[0], [1], [2]] and "BatchNorm" in one.reason
    ray = plan_pool(16, two, max_chunk=64, ray_address="127.0.0.1:6379")
    assert ray.backend == "ray" and ray.workers is None and ray.chunks(16, workers=4)[0] == [0, 1, 2, 3]
    assert plan_pool(16, two, max_chunk=64, backend="ray").workers == 2                # a local cluster, asked for
    gpus = plan_pool(16, Machine(cpus=16, gpus=4), max_chunk=64, device="cuda")      # a chunk per GPU
    assert (gpus.backend, gpus.workers, len(gpus.chunks(16))) == ("processes", 4, 4)
    assert plan_pool(16, Machine(cpus=16, gpus=1), max_chunk=64, device="cuda").backend == "here"
    with pytest.raises(ValueError, match="--pool_backend must be one of"):
        plan_pool(16, two, max_chunk=64, backend="threads")


def test_the_plan_batches_on_cpu_only_where_a_step_is_small_enough_to_pay():
    from models.pool_plan import plan_for

    small = tiny_specs(4)
    assert plan_for(small, torch.zeros(1, 8, 8), pool_workers=1).batched
    recipe = TrainConfig(epochs=1, batch_size=32).to_dict()
    salem = [ReferenceModelSpec(k, "salem_cnn_relu", 10, 3, 32, recipe, k, "pop", f"rows{k}") for k in range(4)]
    heavy = plan_for(salem, torch.zeros(3, 32, 32), pool_workers=1)
    assert not heavy.batched and "GFLOP" in heavy.reason
    assert plan_for(salem, torch.zeros(3, 32, 32), pool_workers=1, pool_chunk_size=4).batched   # asked for


def test_worker_processes_give_the_models_this_process_gives():
    specs = tiny_specs(4)
    images, labels = tiny_population()
    rows = [np.arange(i, 48, 2) for i in range(4)]
    here, there = {}, {}
    train_pool(specs, images, labels, rows, lambda s, r: here.__setitem__(s.index, r), backend="here")
    info = train_pool(specs, images, labels, rows, lambda s, r: there.__setitem__(s.index, r), backend="processes",
                      workers=2)
    assert info["mode"] == "processes" and info["chunks"] == [2, 2] and info["batched"]
    for index in range(4):
        for name, value in here[index]["state_dict"].items():
            assert torch.allclose(there[index]["state_dict"][name], value, atol=1e-6), (index, name)


def test_custom_trainer_plugs_into_the_pool():
    specs = tiny_specs(2)
    images, labels = tiny_population()
    seen = []

    def my_trainer(spec, x, y, rows):
        seen.append((spec.index, len(rows)))
        return {k: torch.zeros_like(v) for k, v in spec.build().state_dict().items()}

    done = {}
    info = train_pool(specs, images, labels, [np.arange(10), np.arange(20)], lambda s, r: done.__setitem__(s.index, r),
                      max_chunk=8, trainer=my_trainer, workers=2)          # a closure: this process, not workers
    assert info["mode"] == "here"
    assert seen == [(0, 10), (1, 20)] and sorted(done) == [0, 1] and info["batched"] is False
    assert all(float(v.abs().sum()) == 0 for v in done[1]["state_dict"].values())


def test_pool_progress_writes_a_few_lines_to_a_log_that_is_not_a_terminal(capsys):
    specs = tiny_specs(6)
    images, labels = tiny_population()
    train_pool(specs, images, labels, [np.arange(24)] * 6, lambda s, r: None, max_chunk=2, use_ray=False,
               progress=True)
    err = capsys.readouterr().err
    assert "reference models" in err and "6/6" in err
    assert len(err.replace("\r", "\n").splitlines()) <= 4, err


@pytest.mark.slow
def test_local_ray_pool_on_two_cpus_equals_training_alone(capfd):
    specs = tiny_specs(3)
    images, labels = tiny_population()
    rows = [np.arange(i, 48, 2) for i in range(3)]
    through_ray, one_by_one = {}, {}
    info = train_pool(specs, images, labels, rows, lambda spec, result: through_ray.__setitem__(spec.index, result),
                      max_chunk=64, workers=2, use_ray=True)
    assert info["mode"] == "ray" and info["workers"] == 2 and info["chunks"] == [2, 1] and info["batched"]
    for spec, spec_rows in zip(specs, rows):
        one_by_one[spec.index] = train_reference_model(spec, images, labels, spec_rows)
    assert sorted(through_ray) == [0, 1, 2]
    for index in range(3):
        ray_model, alone = specs[index].build(), specs[index].build()
        ray_model.load_state_dict(through_ray[index]["state_dict"])
        alone.load_state_dict(one_by_one[index]["state_dict"])
        with torch.no_grad():
            assert (ray_model(images) - alone(images)).abs().max() < 1e-4
    import ray

    assert not ray.is_initialized()                                # the local cluster was shut down
    assert "Token authentication" not in capfd.readouterr().err    # Ray's notices stay in its logs


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def ray_head(monkeypatch):
    """A Ray head node in its own process group on 127.0.0.1 (1 CPU), stopped afterwards by its pid.

    Head and driver agree on token authentication (Ray's default for new clusters) through the
    environment, as a user's shell would.
    """
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="r", dir="/tmp")
    ray_bin = Path(sys.executable).with_name("ray")
    process = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=1", "--num-gpus=0",
         "--node-ip-address=127.0.0.1", "--include-dashboard=false", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            check_address(address)
            break
        except ValueError:
            assert process.poll() is None, "ray start --head exited early"
            time.sleep(0.5)
    else:
        pytest.fail("the Ray head node did not come up within 120 s")
    yield address
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.slow
def test_ray_address_trains_on_an_existing_head_node(ray_head):
    specs = tiny_specs(2)
    images, labels = tiny_population()
    rows = [np.arange(0, 24), np.arange(24, 48)]
    results = {}
    info = train_pool(specs, images, labels, rows, lambda spec, result: results.__setitem__(spec.index, result),
                      max_chunk=64, address=ray_head)
    assert info["mode"] == "ray" and info["workers"] == 1 and info["chunks"] == [2]
    expected = train_chunk(specs, images, labels, rows)["results"][1]
    assert fingerprint(results[1]["state_dict"]) == fingerprint(expected["state_dict"])
    import ray

    assert not ray.is_initialized()


def test_unreachable_ray_address_is_a_one_line_error(tmp_path, capsys):
    port = free_port()                                             # nothing listens there
    code = main("digits", ["--reference_models", "4", "--ray_address", f"127.0.0.1:{port}", "--epochs", "1",
                           "--train_set_size", "60", "--test_set_size", "60", "--attack_set_size", "30",
                           "--sets", "original", "--results_dir", str(tmp_path), "--pretrained_dir", str(tmp_path),
                           "--quiet", "--no_figures"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"--ray_address 127.0.0.1:{port}: no Ray cluster answers there" in err


@pytest.mark.parametrize("argv, message", [
    (["--reference_models", "1"], "--reference_models must be 0 (off) or at least 2"),
    (["--reference_models", "0", "--attacks", "lira"], "--attacks lira needs reference models"),
    (["--reference_models", "0", "--ray_address", "127.0.0.1:1"], "--ray_address is only used"),
    (["--attack_set_size", "400"], "make --test_set_size larger than --attack_set_size"),
])
def test_reference_flags_bad_input_is_one_line(argv, message, tmp_path, capsys):
    code = main("digits", argv + ["--results_dir", str(tmp_path), "--pretrained_dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


@pytest.mark.slow
def test_run_with_reference_models_trains_once_scores_once_and_resumes(tmp_path):
    config = config_from_preset(
        "digits", epochs=2, train_set_size=60, test_set_size=60, attack_set_size=30, batch_size=32,
        sets=("original", "noise", "sample_photos"), reference_models=4, progress=False, figures=False,
        results_dir=str(tmp_path / "results"), pretrained_dir=str(tmp_path / "checkpoints"))
    assert "lira" in config.attacks and "modified_entropy" in config.attacks
    first = run_experiment(config)
    manifest = json.loads(first.files["manifest"].read_text())
    pool = manifest["notes"]["reference_pool"]
    assert pool["trained"] == 4 and pool["loaded"] == 0
    workers = machine().cpus
    assert pool["training"]["ahead"] == (workers > 1) and pool["training"]["workers"] == workers   # the plan
    assert pool["training"]["chunks"] == [len(c) for c in plan_chunks(4, workers, 64)]
    assert set(manifest["notes"]["reference_forward_samples_per_row"].values()) == {1.0}   # one forward each
    with np.load(pool["membership"]) as record:
        membership = record["membership"]
    assert membership.shape == (4, pool["population_rows"]) and (membership.sum(axis=0) == 1).all()
    table = first.attack_table
    for name in ("LiRA", "LiRA Offline", "RMIA", "RMIA Online", "LOSS", "Modified Entropy"):
        assert table[f"{name} Attack AUROC"].notna().all(), name
    held_out = pd.read_csv(first.files["held_out_fpr_results"], index_col=0)
    assert list(held_out.index[:2]) == ["Members", "Held-out"]
    assert held_out.loc["Noise", "Label source"] == "predicted" and held_out.loc["Original", "Label source"] == "label"
    assert held_out.loc["Held-out", "LiRA FPR@1%HeldOutFPR"] <= 0.01

    second = run_experiment(config)                                # everything reused: no Ray, no forward
    notes = json.loads(second.files["manifest"].read_text())["notes"]
    assert notes["reference_pool"]["loaded"] == 4 and notes["reference_pool"]["ray"] is None
    assert set(notes["reference_forward_samples_per_row"].values()) == {0.0}
    pd.testing.assert_frame_equal(second.attack_table, table)

    assert Path(pool["folder"]).name.startswith("small_cnn_digits_reference_pool_K4_")
    (Path(pool["folder"]) / "reference_1.pt").unlink()                             # interrupted pool
    third = json.loads(run_experiment(replace(config, pool_workers=1)).files["manifest"].read_text())
    pool_notes = third["notes"]["reference_pool"]
    assert pool_notes["loaded"] == 3 and pool_notes["trained"] == 1 and pool_notes["training"]["mode"] == "here"
    assert not pool_notes["training"]["ahead"]                                 # --pool_workers 1: this process


def test_cached_logits_heal_a_damaged_entry_with_one_warning(tmp_path, caplog):
    from models.inference import cached_logits
    from models.inference import ScoreCache

    model = tiny_specs(1)[0].build()
    images, _ = tiny_population(12)
    cache = ScoreCache(tmp_path / "cache")
    first, forwarded = cached_logits(model, "m0", images, "cpu", cache)
    assert forwarded == 12 and first.shape == (12, 10)
    again, forwarded = cached_logits(model, "m0", images, "cpu", cache)
    assert forwarded == 0 and np.array_equal(again, first)
    (entry,) = (tmp_path / "cache").glob("logits_*.npz")
    entry.write_bytes(entry.read_bytes()[:40])  # truncated
    with caplog.at_level("WARNING"):
        healed, forwarded = cached_logits(model, "m0", images, "cpu", cache)
    assert forwarded == 12 and np.array_equal(healed, first) and cache.repaired == 1
    assert [r.getMessage() for r in caplog.records if str(entry) in r.getMessage()]
