"""Faults of the reference pool (issue 18's pool cases, issue 19's chunk failures): each case is one
line, finished models are kept, nothing started by the package outlives the run."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import models.reference_pool as reference_pool
from models.checkpoints import config_path
from models.reference_pool import PoolRecordError, ReferenceModelSpec, ReferencePool
from models.training import TrainConfig
from pipeline.cli import main
from models.pool_executor import PoolTrainingError, train_pool
from models.ray_pool import check_address

ROOT = Path(__file__).resolve().parents[1]


def specs_with(k: int, lr: float = 0.01, epochs: int = 1, start: int = 0) -> list[ReferenceModelSpec]:
    recipe = TrainConfig(epochs=epochs, batch_size=16, lr=lr, seed=5).to_dict()
    return [ReferenceModelSpec(i, "small_cnn", 10, 1, 8, recipe, 100 + i, "pop", f"rows{i}")
            for i in range(start, start + k)]


def population(n: int = 48):
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 8, 8, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def pool_of(directory, specs) -> ReferencePool:
    membership = np.zeros((len(specs), 48), dtype=bool)
    for position in range(len(specs)):
        membership[position, position % 2::2] = True
    return ReferencePool(directory, "small_cnn", "digits", "", specs, membership)


def small_run(tmp_path, *flags) -> list[str]:
    return ["--epochs", "1", "--train_set_size", "60", "--test_set_size", "60", "--attack_set_size", "30",
            "--sets", "original", "--results_dir", str(tmp_path / "results"),
            "--pretrained_dir", str(tmp_path / "models"), "--quiet", "--no_figures", *flags]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("k, message", [("10000", "--reference_models 10000 is more than this run can use: at most 120"),
                                        ("2000", "at most 120 (half the 240 population rows"),
                                        ("2", "--reference_models 2: the reference population has 240 rows")])
def test_too_many_reference_models_is_one_line_before_any_work(k, message, tmp_path, capsys):
    code = main("digits", small_run(tmp_path, "--reference_models", k))
    assert code == 2 and message in one_line_error(capsys)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())   # nothing trained


def test_pool_larger_than_the_free_disk_is_one_line(tmp_path, capsys, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=10_000))
    code = main("digits", small_run(tmp_path, "--reference_models", "8"))
    err = one_line_error(capsys)
    assert code == 2 and "--reference_models 8: the pool needs about" in err and "MiB free" in err


def test_reference_json_holding_a_list_is_one_line_naming_it(tmp_path):
    spec = specs_with(1)[0]
    pool = pool_of(tmp_path, [spec])
    pool.open()
    images, labels = population()
    pool.save(spec, reference_pool.train_reference_model(spec, images, labels, np.arange(20))["state_dict"])
    config_path(pool.path(0)).write_text("[]")
    with pytest.raises(PoolRecordError) as error:
        pool.load_trained(spec)
    assert str(config_path(pool.path(0))) in str(error.value) and "--train" in str(error.value)
    assert "\n" not in str(error.value)


def test_pools_of_another_k_population_or_recipe_live_in_other_folders(tmp_path):
    base = pool_of(tmp_path, specs_with(2)).directory
    assert pool_of(tmp_path, specs_with(3)).directory != base                          # K
    other_population = [ReferenceModelSpec(**{**s.__dict__, "population_sha256": "other"}) for s in specs_with(2)]
    assert pool_of(tmp_path, other_population).directory != base                      # population
    assert pool_of(tmp_path, specs_with(2, lr=0.02)).directory != base                 # recipe
    assert pool_of(tmp_path, specs_with(2)).directory == base                          # same pool: same folder
    assert base.name.startswith("small_cnn_digits_reference_pool_K2_")


def test_checkpoint_of_another_model_is_not_replaced_without_train(tmp_path):
    first, second = specs_with(2)
    pool = pool_of(tmp_path, [first, second])
    pool.open()
    images, labels = population()
    pool.save(second, reference_pool.train_reference_model(second, images, labels, np.arange(20))["state_dict"])
    before = pool.path(1).read_bytes()
    pool.path(1).rename(pool.path(0))
    config_path(pool.path(1)).rename(config_path(pool.path(0)))                       # model 1's files as model 0
    with pytest.raises(PoolRecordError, match="was made for another pool.*pass --train"):
        pool.load_trained(first)
    assert pool.path(0).read_bytes() == before                                         # left as it was


def test_membership_record_is_read_back_and_checked_on_resume(tmp_path):
    specs = specs_with(2)
    pool = pool_of(tmp_path, specs)
    pool.open()
    images, labels = population()
    pool.save(specs[0], reference_pool.train_reference_model(specs[0], images, labels, np.arange(20))["state_dict"])
    with np.load(pool.membership_path) as stored:                                     # one file: matrix + identity
        record = json.loads(str(stored["record"]))
        assert np.array_equal(stored["membership"], pool.membership)
    assert record["pool_id"] == pool.pool_id and list(record["weights"]) == ["0"] and len(record["specs"]) == 2
    resumed = pool_of(tmp_path, specs)
    resumed.open()
    assert resumed.weights == pool.weights and resumed.load_trained(specs[0]) is not None
    assert resumed.load_trained(specs[1]) is None                                      # only the missing one trains
    tampered = pool.membership.copy()
    tampered[0, 0] = not tampered[0, 0]
    with open(pool.membership_path, "wb") as handle:
        np.savez(handle, membership=tampered, record=np.array(json.dumps(record)))
    with pytest.raises(PoolRecordError, match="describes another pool"):
        pool_of(tmp_path, specs).open()
    whole = pool.membership_path.read_bytes()
    for damaged in (b"not a record", whole[:len(whole) // 2], whole[:40], b""):        # random, truncated, empty
        pool.membership_path.write_bytes(damaged)
        with pytest.raises(PoolRecordError, match="is damaged") as error:
            pool_of(tmp_path, specs).open()
        assert "\n" not in str(error.value)
    replaced = pool_of(tmp_path, specs)
    replaced.open(replace=True)                                                        # --train: a fresh record
    assert replaced.weights == {}


def test_a_chunk_with_a_nan_loss_is_one_line_naming_its_models_and_the_others_are_kept():
    specs = specs_with(2) + specs_with(2, lr=1e38, start=2)                            # chunk 2 diverges
    images, labels = population()
    done = {}
    with pytest.raises(PoolTrainingError) as error:
        train_pool(specs, images, labels, [np.arange(24)] * 4, lambda s, r: done.__setitem__(s.index, r),
                   max_chunk=2, workers=1, use_ray=False)
    message = str(error.value)
    assert "reference model(s) 2, 3: a NaN or inf training loss in epoch 1" in message and "\n" not in message
    assert sorted(done) == [0, 1]


def test_a_nan_loss_inside_a_batched_chunk_stops_only_that_model():
    specs = specs_with(3, epochs=2)
    images, labels = population()
    images[40] = float("nan")                                                          # only model 1 trains on it
    rows = [np.arange(0, 24), np.arange(24, 48), np.arange(1, 25)]
    done = {}
    with pytest.raises(PoolTrainingError) as error:
        train_pool(specs, images, labels, rows, lambda s, r: done.__setitem__(s.index, r), max_chunk=3,
                   workers=1, use_ray=False)
    assert str(error.value).startswith("reference model(s) 1: a NaN or inf training loss in epoch 1")
    assert sorted(done) == [0, 2]                                                      # same chunk, kept
    finite = torch.nan_to_num(images)
    for index in (0, 2):                                                               # as if trained alone
        batched, alone = specs[index].build(), specs[index].build()
        batched.load_state_dict(done[index]["state_dict"])
        alone.load_state_dict(reference_pool.train_reference_model(specs[index], images, labels, rows[index])["state_dict"])
        with torch.no_grad():
            assert (batched(finite) - alone(finite)).abs().max() < 1e-4


def test_models_trained_one_per_step_are_each_saved_as_they_finish(tmp_path):
    specs = specs_with(3)
    pool = pool_of(tmp_path, specs)
    pool.open()
    images, labels = population()
    trained = []

    def interrupted_third(spec, x, y, rows):                                           # Ctrl-C in the third model
        if len(trained) == 2:
            raise KeyboardInterrupt
        trained.append(spec.index)
        return reference_pool.default_trainer(spec, x, y, rows)

    with pytest.raises(KeyboardInterrupt):
        train_pool(specs, images, labels, [np.arange(24)] * 3, lambda s, r: pool.save(s, r["state_dict"]),
                   max_chunk=8, workers=1, use_ray=False, trainer=interrupted_third)
    resumed = pool_of(tmp_path, specs)
    resumed.open()
    assert [resumed.load_trained(s) is not None for s in specs] == [True, True, False]
    info = train_pool(specs, images, labels, [np.arange(24)] * 3, lambda s, r: None, max_chunk=8, workers=1,
                      use_ray=False, batch=False)
    assert info["chunks"] == [1, 1, 1] and not info["batched"]                          # also one Ray task each


def test_out_of_memory_in_a_chunk_names_its_models(monkeypatch):
    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(reference_pool, "train_stacked", no_memory)
    images, labels = population()
    with pytest.raises(PoolTrainingError, match=r"reference model\(s\) 0, 1: out of memory.*--pool_chunk_size"):
        train_pool(specs_with(2), images, labels, [np.arange(24)] * 2, lambda s, r: None, max_chunk=2,
                   use_ray=False)


def test_interrupt_mid_chunk_keeps_every_finished_model(tmp_path, monkeypatch):
    specs = specs_with(4)
    pool = pool_of(tmp_path, specs)
    pool.open()
    images, labels = population()
    real, calls = reference_pool.train_stacked, []

    def interrupted_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt                                                    # Ctrl-C mid-chunk
        return real(*args, **kwargs)

    monkeypatch.setattr(reference_pool, "train_stacked", interrupted_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        train_pool(specs, images, labels, [np.arange(24)] * 4, lambda s, r: pool.save(s, r["state_dict"]),
                   max_chunk=2, workers=1, use_ray=False)
    resumed = pool_of(tmp_path, specs)
    resumed.open()
    assert [resumed.load_trained(s) is not None for s in specs] == [True, True, False, False]


def serve(behaviour: str) -> tuple[str, threading.Event]:
    """A TCP server on a free port that is not Ray: ``silent`` accepts and says nothing, ``http`` answers
    like a web server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def run():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except socket.timeout:
                continue
            if behaviour == "http":
                connection.recv(64)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            threading.Timer(30, connection.close).start()
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return f"127.0.0.1:{listener.getsockname()[1]}", stop


@pytest.mark.parametrize("behaviour", ["silent", "http"])
def test_an_address_that_does_not_answer_as_ray_fails_within_ten_seconds(behaviour):
    address, stop = serve(behaviour)
    start = time.monotonic()
    try:
        with pytest.raises(ValueError) as error:
            check_address(address)
    finally:
        stop.set()
    assert time.monotonic() - start < 10.5
    message = str(error.value)
    assert message.startswith(f"--ray_address {address}: ") and "\n" not in message
    assert ("not a Ray cluster" in message) if behaviour == "http" else ("no Ray cluster answers" in message)


def dies_in_its_worker(spec, images, labels, rows, attempts=None):
    """A trainer whose Ray worker dies for model 1 (each attempt leaves a line in ``attempts``)."""
    if spec.index == 1:
        with open(attempts, "a") as handle:
            handle.write("attempt\n")
        os._exit(1)
    return {k: torch.zeros_like(v) for k, v in spec.build().state_dict().items()}


@pytest.mark.slow
def test_a_worker_that_dies_is_retried_once_then_named_in_one_line(tmp_path, monkeypatch):
    import functools

    attempts = tmp_path / "attempts.txt"
    here = str(Path(__file__).parent)                                  # workers import this module by name
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    images, labels = population()
    done = {}
    with pytest.raises(PoolTrainingError) as error:
        train_pool(specs_with(3), images, labels, [np.arange(24)] * 3, lambda s, r: done.__setitem__(s.index, r),
                   max_chunk=1, workers=2, trainer=functools.partial(dies_in_its_worker, attempts=str(attempts)),
                   use_ray=True)
    assert str(error.value).startswith("reference model(s) 1: its Ray worker failed twice")
    assert attempts.read_text().count("attempt") == 2                                   # retried once
    assert sorted(done) == [0, 2]                                                        # finished ones kept


KILLED_RUN = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    import numpy as np, torch
    from models.reference_pool import ReferenceModelSpec
    from models.training import TrainConfig
    from models.pool_executor import train_pool

    def slow(spec, images, labels, rows):
        time.sleep(600)

    recipe = TrainConfig(epochs=1, batch_size=16, seed=5).to_dict()
    specs = [ReferenceModelSpec(i, "small_cnn", 10, 1, 8, recipe, i, "p", "r") for i in range(2)]
    print("training", flush=True)
    train_pool(specs, torch.zeros(8, 1, 8, 8), torch.zeros(8, dtype=torch.long), [np.arange(8)] * 2,
               lambda s, r: None, max_chunk=1, workers=2, trainer=slow, use_ray=True)
""")


def group_members(pgid: int) -> list[str]:
    listing = subprocess.run(["ps", "-o", "pid=,pgid=,stat=,comm=", "-e"], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines()
            if int(line.split()[1]) == pgid and not line.split()[2].startswith("Z")]


@pytest.mark.slow
def test_no_process_of_a_killed_run_outlives_it(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN.format(root=str(ROOT)))
    run = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True, start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert run.stdout.readline().strip() == "training"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("ray::" in m or "default_worker" in m or "raylet" in m
                                                       for m in group_members(run.pid)):
            time.sleep(0.5)
        time.sleep(3)                                                                     # tasks running
        assert len(group_members(run.pid)) > 2, "the Ray cluster did not start"
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and group_members(run.pid):
            time.sleep(0.5)
        left = group_members(run.pid)
    finally:
        for member in group_members(run.pid):                                             # never leave them
            try:
                os.kill(int(member.split()[0]), signal.SIGKILL)
            except OSError:
                pass
    assert left == [], left


@pytest.mark.slow
def test_a_local_cluster_ends_its_own_processes_and_none_of_the_runs_older_ones():
    from models.ray_pool import ray_cluster

    older = subprocess.Popen(["sleep", "120"])                   # e.g. multiprocessing's resource tracker
    try:
        with ray_cluster(None, 1):
            pass
        time.sleep(1.5)                                          # the watchdog kills after the run's side closes
        assert older.poll() is None, "the cluster's watchdog killed a process it did not start"
    finally:
        older.kill()
        older.wait()
