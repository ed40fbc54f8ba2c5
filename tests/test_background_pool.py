"""Worker processes and the pool ahead (models/pool_executor.py ProcessExecutor, models/pool_worker.py,
pipeline.stages.reference.start_pool_ahead): a chunk trained in a worker process gives the models it
gives here, a worker that dies is one failure naming its models, and no worker outlives its run."""
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
from models.pool_executor import PoolTraining, ProcessExecutor
from models.pool_plan import Machine
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


def collected(executor) -> tuple[dict, list]:
    models = {}
    failures, _ = executor.collect(lambda result: models.__setitem__(result["index"], result))
    return models, failures


def test_a_worker_process_gives_the_models_it_gives_here():
    specs, images, labels, rows = specs_and_data()
    executor = ProcessExecutor(images, labels, workers=1)
    try:
        executor.submit(specs, rows, batch=True)
        models, failures = collected(executor)
    finally:
        executor.close()
    here = train_chunk(specs, images, labels, rows, threads=1)
    assert failures == [] and sorted(models) == [0, 1] and models[0]["seconds"] > 0
    for ours in here["results"]:
        for name, value in ours["state_dict"].items():
            assert torch.allclose(models[ours["index"]]["state_dict"][name], value, atol=1e-6), name


def test_a_worker_process_that_dies_is_one_failure_naming_its_models():
    specs, images, labels, rows = specs_and_data(k=3, epochs=500)
    executor = ProcessExecutor(images, labels, workers=2)
    try:
        executor.submit(specs[:2], rows[:2], batch=True)                      # worker 0
        executor.submit(specs[2:], rows[2:], batch=True)                      # worker 1
        os.kill(executor._workers[0].process.pid, signal.SIGKILL)
        executor._workers[1].process.kill()
        models, failures = collected(executor)
    finally:
        executor.close()
    assert models == {} and sorted(f[0] for f in failures) == [[0, 1], [2]]   # in the order noticed
    assert all("its worker process ended without an answer" in reason for _, reason in failures)


def test_the_pool_ahead_applies_only_to_local_worker_processes(monkeypatch, tmp_path):
    from pipeline.run import prepare_run
    from pipeline.stages.reference import start_pool_ahead

    config = config_from_preset("digits", epochs=1, train_set_size=60, test_set_size=60, attack_set_size=30,
                                sets=("original",), reference_models=4, progress=False, figures=False,
                                results_dir=str(tmp_path / "results"), pretrained_dir=str(tmp_path / "models"))
    started = []
    monkeypatch.setattr(PoolTraining, "submit", lambda self, specs, rows: started.append([s.index for s in specs]))
    monkeypatch.setattr("models.pool_plan.machine", lambda device="cpu": Machine(cpus=2))
    monkeypatch.setattr("models.pool_executor.ProcessExecutor.__init__", lambda self, *a, **k: setattr(self, "workers", 2))
    monkeypatch.setattr("models.pool_executor.ProcessExecutor.close", lambda self: None)
    prepared = prepare_run(config)
    cpu = torch.device("cpu")
    ahead = start_pool_ahead(config, prepared.data, prepared.positions, cpu)
    assert ahead is not None and ahead.plan.backend == "processes" and started == [[0, 1, 2, 3]]   # every model
    for other in (replace(config, pool_workers=1), replace(config, pool_backend="here"),
                  replace(config, reference_models=0), replace(config, ray_address="127.0.0.1:6379"),
                  replace(config, pool_backend="ray")):
        assert start_pool_ahead(other, prepared.data, prepared.positions, cpu) is None
    monkeypatch.setattr("models.pool_plan.machine", lambda device="cpu": Machine(cpus=1))
    assert start_pool_ahead(config, prepared.data, prepared.positions, cpu) is None
    assert started == [[0, 1, 2, 3]]


ORPHAN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    from test_background_pool import specs_and_data
    from models.pool_executor import ProcessExecutor

    if __name__ == "__main__":
        specs, images, labels, rows = specs_and_data(epochs=10000)
        executor = ProcessExecutor(images, labels, workers=1)
        executor.submit(specs, rows, batch=True)
        print(executor._workers[0].process.pid, flush=True)
        executor.collect(lambda result: None)
""")


@pytest.mark.slow
def test_a_worker_process_ends_when_its_run_is_killed(tmp_path):
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
        assert not _alive(child), "the worker process outlived its run"
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
def test_ctrl_c_while_collecting_keeps_the_models_already_back_and_ends_the_workers(tmp_path, monkeypatch):
    from models.reference_pool import ReferencePool
    from pipeline.run import run_experiment

    config = config_from_preset("digits", epochs=1, train_set_size=60, test_set_size=60, attack_set_size=30,
                                sets=("original",), reference_models=4, progress=False, figures=False,
                                pool_backend="processes", pool_workers=2,
                                results_dir=str(tmp_path / "results"), pretrained_dir=str(tmp_path / "models"))
    executors, real_save, real_init = [], ReferencePool.save, ProcessExecutor.__init__

    def interrupted_after_two(self, spec, state_dict):
        saved = real_save(self, spec, state_dict)
        if len(list(self.directory.glob("reference_*.pt"))) == 2:
            raise KeyboardInterrupt                                               # Ctrl-C after two models
        return saved

    monkeypatch.setattr(ProcessExecutor, "__init__", lambda self, *a, **k: (
        real_init(self, *a, **k), executors.extend(w.process.pid for w in self._workers))[0])
    monkeypatch.setattr(ReferencePool, "save", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config)
    saved = sorted(path.name for path in (tmp_path / "models").glob("*reference_pool_K4_*/reference_*.pt"))
    assert len(saved) == 2
    assert len(executors) == 2 and not any(_alive(pid) for pid in executors)      # the workers ended
