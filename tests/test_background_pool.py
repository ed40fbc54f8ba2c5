"""The pool ahead (models/background_pool.py, pipeline.stages.reference.start_pool_ahead): a chunk of
reference models trained in a spawned one-thread process gives the models it gives here, a child
that dies is one failure naming its models, and no child outlives its run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from configuration.config import config_from_preset
from models.background_pool import BackgroundChunk
from models.reference_pool import ReferenceModelSpec, train_chunk
from models.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def specs_and_data(k: int = 2, epochs: int = 2):
    recipe = TrainConfig(epochs=epochs, batch_size=16, lr=0.01, seed=5).to_dict()
    specs = [ReferenceModelSpec(i, "small_cnn", 10, 1, 8, {**recipe, "seed": 5 + i}, 100 + i, "pop", f"rows{i}")
             for i in range(k)]
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.randn(48, 1, 8, 8, generator=generator), torch.randint(0, 10, (48,), generator=generator)
    return specs, images, labels, [np.arange(i, 48, 2) for i in range(k)]


def test_a_background_chunk_gives_the_models_it_gives_here():
    specs, images, labels, rows = specs_and_data()
    outcome = BackgroundChunk(specs, images, labels, rows).outcome()
    assert outcome["failed"] is None and outcome["seconds"] > 0
    here = train_chunk(specs, images, labels, rows, threads=1)
    for theirs, ours in zip(outcome["results"], here["results"]):
        assert theirs["index"] == ours["index"]
        for name, value in ours["state_dict"].items():
            assert torch.allclose(theirs["state_dict"][name], value, atol=1e-6), name


def test_a_background_process_that_dies_is_one_failure_naming_its_models():
    specs, images, labels, rows = specs_and_data(epochs=500)
    job = BackgroundChunk(specs, images, labels, rows)
    os.kill(job._process.pid, signal.SIGKILL)
    outcome = job.outcome()
    assert outcome["results"] == [] and outcome["failed"]["models"] == [0, 1]
    assert "ended without an answer" in outcome["failed"]["reason"]


def test_the_pool_ahead_applies_only_to_automatic_local_batched_cpu_pools(monkeypatch, tmp_path):
    from pipeline.run import prepare_run
    from pipeline.stages.reference import start_pool_ahead

    config = config_from_preset("digits", epochs=1, train_set_size=60, test_set_size=60, attack_set_size=30,
                                sets=("original",), reference_models=4, progress=False, figures=False,
                                results_dir=str(tmp_path / "results"), pretrained_dir=str(tmp_path / "models"))
    started = []
    monkeypatch.setattr("models.background_pool.BackgroundChunk.__init__",
                        lambda self, specs, *a, **k: started.append([s.index for s in specs]) or setattr(self, "specs", specs))
    prepared = prepare_run(config)
    cpu = torch.device("cpu")
    assert start_pool_ahead(config, prepared.data, prepared.positions, cpu) is not None
    assert started == [[0, 1, 2]]                                                  # two thirds of 4
    for other in (replace(config, pool_workers=1), replace(config, pool_workers=2), replace(config, reference_models=0),
                  replace(config, ray_address="127.0.0.1:6379"), replace(config, pool_chunk_size=1)):
        assert start_pool_ahead(other, prepared.data, prepared.positions, cpu) is None
    assert start_pool_ahead(config, prepared.data, prepared.positions, torch.device("meta")) is None
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert start_pool_ahead(config, prepared.data, prepared.positions, cpu) is None
    assert started == [[0, 1, 2]]


ORPHAN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    from test_background_pool import specs_and_data
    from models.background_pool import BackgroundChunk

    if __name__ == "__main__":
        job = BackgroundChunk(*specs_and_data(epochs=10000))
        print(job._process.pid, flush=True)
        job.outcome()
""")


@pytest.mark.slow
def test_the_background_process_ends_when_its_run_is_killed(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(ORPHAN.format(root=str(ROOT), tests=str(Path(__file__).parent)))
    run = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True)
    child = int(run.stdout.readline())
    try:
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(child):
            time.sleep(0.2)
        assert not _alive(child), "the background process outlived its run"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_ctrl_c_in_this_process_share_keeps_the_models_the_background_finished(tmp_path, monkeypatch):
    import models.ray_pool as ray_pool
    from pipeline.run import run_experiment

    config = config_from_preset("digits", epochs=1, train_set_size=60, test_set_size=60, attack_set_size=30,
                                sets=("original",), reference_models=4, progress=False, figures=False,
                                results_dir=str(tmp_path / "results"), pretrained_dir=str(tmp_path / "models"))

    def interrupted_after_the_background(*args, **kwargs):
        deadline = time.monotonic() + 60
        while not _background[0].ready() and time.monotonic() < deadline:
            time.sleep(0.1)
        raise KeyboardInterrupt

    _background = []
    real_init = BackgroundChunk.__init__
    monkeypatch.setattr(BackgroundChunk, "__init__", lambda self, *a, **k: (_background.append(self),
                                                                              real_init(self, *a, **k))[-1])
    monkeypatch.setattr(ray_pool, "train_pool", interrupted_after_the_background)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config)
    saved = sorted(path.name for path in (tmp_path / "models").glob("*reference_pool_K4_*/reference_*.pt"))
    assert saved == ["reference_0.pt", "reference_1.pt", "reference_2.pt"]          # the background's three
    assert not _alive(_background[0]._process.pid)
