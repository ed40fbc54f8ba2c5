"""Runs that share folders (issue 18, "Concurrent runs"): a run that writes checkpoints holds a lock
on them, a second one stops naming the holder's pid, a killed holder's lock is taken over, and a
run that replaces another configuration's results says so and records the replaced run."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.manifest import Manifest
from engine.outputs import OutputSet
from utils.locks import LockHeldError, file_lock, hold_locks, lock_path, process_start_time, read_owner

ROOT = Path(__file__).resolve().parents[1]
TINY_FLAGS = ["--epochs", "1", "--train_set_size", "60", "--test_set_size", "60", "--attack_set_size", "30",
              "--sets", "original", "scaled", "--attacks", "threshold", "entropy", "--quiet",
              "--reference_models", "0", "--no_figures"]
HOLD_LOCK = """
import sys, time
from pathlib import Path
from utils.locks import file_lock
with file_lock(Path(sys.argv[1]), "a test holder"):
    Path(sys.argv[2]).write_text("locked")
    time.sleep(120)
"""
# A real run of the script whose training blocks (until killed) once it has started.
BLOCKED_RUN = """
import sys, time
from pathlib import Path
import pipeline.stages.models as model_stage
from pipeline.cli import main

def blocked(*args, **kwargs):
    Path(sys.argv[1]).write_text("training")
    time.sleep(120)

model_stage.train_model = blocked
sys.exit(main("digits", sys.argv[2:]))
"""


def python(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_a_held_lock_names_the_other_process_and_a_killed_holders_lock_is_taken_over(tmp_path, caplog):
    target = tmp_path / "models" / "small_cnn_digits_target.pt"
    ready = tmp_path / "ready"
    holder = python("-c", HOLD_LOCK, str(target), str(ready))
    try:
        wait_for(ready, holder)
        recorded = read_owner(lock_path(target))
        assert recorded.pid == holder.pid and recorded.purpose == "a test holder"
        assert recorded.started == pytest.approx(process_start_time(holder.pid), abs=2)
        with pytest.raises(LockHeldError) as caught:
            with file_lock(target, "a second writer", fix="wait for it"):
                pytest.fail("took a held lock")
        message = str(caught.value)
        assert f"pid {holder.pid}" in message and str(target) in message and "a test holder" in message
        assert "\n" not in message and message.endswith("wait for it")
    finally:
        kill(holder)
    assert lock_path(target).exists()  # a killed holder leaves its file behind
    with caplog.at_level(logging.WARNING), file_lock(target, "the next writer") as path:
        assert read_owner(path).pid == os.getpid()
    assert f"left by pid {holder.pid}, which no longer runs" in caplog.text
    assert not lock_path(target).exists() and not any(target.parent.iterdir())


def test_a_waiting_writer_gets_the_lock_when_the_holder_ends(tmp_path):
    target = tmp_path / "pool"
    ready = tmp_path / "ready"
    holder = python("-c", HOLD_LOCK.replace("time.sleep(120)", "time.sleep(1)"), str(target), str(ready))
    try:
        wait_for(ready, holder)
        start = time.monotonic()
        with file_lock(target, "waiting writer", wait_s=60) as path:
            assert read_owner(path).pid == os.getpid()
        assert time.monotonic() - start > 0.3  # it waited for the holder's sleep
        assert holder.wait(timeout=30) == 0
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_file_of_a_dead_pid_is_stale(tmp_path, caplog):
    ended = subprocess.Popen(["true"])
    ended.wait()
    target = tmp_path / "checkpoint.pt"
    lock_path(target).write_text(json.dumps({"pid": ended.pid, "started": 1.0, "host": os.uname().nodename,
                                             "purpose": "a run that was killed", "command": ""}))
    with caplog.at_level(logging.WARNING), hold_locks([target, target], "two names, one lock") as paths:
        assert paths == [lock_path(target)]
    assert f"left by pid {ended.pid}" in caplog.text and not lock_path(target).exists()


@pytest.mark.slow
def test_two_training_runs_on_one_checkpoint_folder(tmp_path):
    """Run A trains (blocked mid-training); run B would write the same checkpoints: it stops at
    once, one line naming A's pid, nothing written. A is killed; B's rerun takes over the lock."""
    checkpoints = tmp_path / "checkpoints"
    flags = [*TINY_FLAGS, "--pretrained_dir", str(checkpoints), "--train"]
    training = tmp_path / "training"
    first = python("-c", BLOCKED_RUN, str(training), *flags, "--results_dir", str(tmp_path / "results_a"))
    try:
        wait_for(training, first)
        before = sorted(path.name for path in checkpoints.iterdir())
        second = python("experiments/digits_experiments.py", *flags, "--results_dir", str(tmp_path / "results_b"))
        _, err = second.communicate(timeout=300)
        assert second.returncode == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0], err
        assert "being written by another run" in lines[0] and "--pretrained_dir" in lines[0]
        assert sorted(path.name for path in checkpoints.iterdir()) == before
        assert not (tmp_path / "results_b").exists() or not any((tmp_path / "results_b").glob("*.csv"))
    finally:
        kill(first)
    again = python("experiments/digits_experiments.py", *flags, "--results_dir", str(tmp_path / "results_b"))
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "taking over the lock" in err and f"left by pid {first.pid}, which no longer runs" in err
    assert {"small_cnn_digits_target.pt", "small_cnn_digits_shadow.pt"} <= {p.name for p in checkpoints.iterdir()}
    assert not list(checkpoints.glob(".*.lock"))


@pytest.mark.slow
def test_two_seeds_at_once_into_one_results_folder(tmp_path):
    """Both runs finish; the one that commits second says, in one line, that it replaced the
    other's results, and its manifest records the replaced run."""
    results = tmp_path / "results"
    runs = {seed: python("experiments/digits_experiments.py", *TINY_FLAGS, "--seed", seed, "--results_dir",
                         str(results), "--pretrained_dir", str(tmp_path / f"checkpoints_{seed}"))
            for seed in ("42", "7")}
    errors = {}
    for seed, process in runs.items():
        _, errors[seed] = process.communicate(timeout=600)
        assert process.returncode == 0, errors[seed]
    notices = {seed: [line for line in err.splitlines() if "replacing the results" in line]
               for seed, err in errors.items()}
    assert sorted(len(lines) for lines in notices.values()) == [0, 1], notices
    second = next(seed for seed, lines in notices.items() if lines)
    first = "7" if second == "42" else "42"
    assert f"seed {first} (now {second})" in notices[second][0] and str(results) in notices[second][0]
    manifest = json.loads((results / "small_cnn_digits_manifest.json").read_text())
    assert manifest["seed"] == int(second)
    replaced = manifest["notes"]["replaced_run"]
    assert replaced["seed"] == int(first)
    assert replaced["config_differences"]["seed"] == {"replaced": int(first), "now": int(second)}
    assert len(replaced["manifest_sha256"]) == 64


def commit(results: Path, config: dict) -> Manifest:
    manifest = Manifest(config)
    with OutputSet(results, "stem_") as output_set:
        (output_set.directory / "stem_attack_results.csv").write_text(json.dumps(config))
        output_set.commit(manifest)
    return manifest


def test_replacing_another_configuration_is_one_line_and_recorded(tmp_path, caplog):
    results = tmp_path / "results"
    first = {"seed": 42, "epochs": 2, "results_dir": str(results), "progress": True}
    assert "replaced_run" not in commit(results, first).notes
    with caplog.at_level(logging.WARNING):
        same = commit(results, {**first, "progress": False, "pretrained_dir": "elsewhere"})  # how, not what
    assert "replaced_run" not in same.notes and not caplog.records
    previous_sha256 = __import__("hashlib").sha256((results / "stem_manifest.json").read_bytes()).hexdigest()
    with caplog.at_level(logging.WARNING):
        other = commit(results, {**first, "seed": 7})
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "seed 42 (now 7)" in warnings[0] and str(results) in warnings[0]
    assert other.notes["replaced_run"] == {"manifest_sha256": previous_sha256, "seed": 42,
                                           "config_differences": {"seed": {"replaced": 42, "now": 7}}}
    written = json.loads((results / "stem_manifest.json").read_text())
    assert written["notes"]["replaced_run"]["seed"] == 42


def test_a_reading_run_stops_while_another_run_writes_the_checkpoints(tmp_path):
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from pipeline.cli import main

    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    for role in ("target", "shadow"):  # present: this run would only load them
        (checkpoints / f"small_cnn_digits_{role}.pt").write_bytes(b"")
    ready = tmp_path / "ready"
    holder = python("-c", HOLD_LOCK, str(checkpoints / "small_cnn_digits_target.pt"), str(ready))
    try:
        wait_for(ready, holder)
        err = io.StringIO()
        with redirect_stderr(err), redirect_stdout(io.StringIO()):
            code = main("digits", [*TINY_FLAGS, "--pretrained_dir", str(checkpoints), "--results_dir",
                                   str(tmp_path / "results")])
        lines = err.getvalue().strip().splitlines()
        assert code == 2 and len(lines) == 1 and f"pid {holder.pid}" in lines[0], lines
        assert "stopped before reading it" in lines[0] and "small_cnn_digits_target.pt" in lines[0]
    finally:
        kill(holder)
