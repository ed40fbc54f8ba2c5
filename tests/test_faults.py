"""Every case of "a run never mixes, loses or silently overwrites results": consistent output sets
under interrupts, guarded checkpoints, self-healing caches, checks before work, one-line errors."""
from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import pipeline.run as run_module
from attacks import ThresholdAttack, evaluate_attack
from attacks.validation import as_probs
from models.checkpoints import CheckpointError, load_checkpoint
from engine import outputs as outputs_module
from pipeline.cli import INTERRUPTED, main
from configuration.config import config_from_preset
from engine.outputs import STAGING_PREFIX, verify_set
from pipeline.run import run_experiment
from models.inference import ScoreCache, entry_checksum

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(epochs=2, train_set_size=60, test_set_size=60, attack_set_size=30, batch_size=32,
            progress=False, sets=("original", "scaled"), attacks=("threshold", "entropy"))
TINY_FLAGS = ["--epochs", "2", "--train_set_size", "60", "--test_set_size", "60", "--attack_set_size", "30",
              "--sets", "original", "scaled", "--attacks", "threshold", "entropy", "--quiet",
              "--reference_models", "0"]


def tiny_config(results: Path, checkpoints: Path, **overrides):
    return config_from_preset("digits", **{**TINY, "results_dir": str(results),
                                           "pretrained_dir": str(checkpoints), **overrides})


def dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def leftovers(folder: Path) -> list[str]:
    return [path.name for path in folder.rglob("*")
            if path.name.startswith(STAGING_PREFIX) or path.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """A complete run with figures: the 'previous set' every interrupt test starts from."""
    base = tmp_path_factory.mktemp("full")
    outputs = run_experiment(tiny_config(base / "results", base / "checkpoints"))
    return base, outputs


def copy_of(full_run, tmp_path) -> tuple[Path, Path]:
    base, _ = full_run
    shutil.copytree(base / "results", tmp_path / "results")
    shutil.copytree(base / "checkpoints", tmp_path / "checkpoints")
    return tmp_path / "results", tmp_path / "checkpoints"


# ---------------------------------------------------------------------------------------------
# (a) one run's outputs form one consistent set


def test_a_full_run_lists_every_file_with_its_sha256(full_run):
    base, outputs = full_run
    results, stem = base / "results", outputs.stem
    manifest = json.loads((results / f"{stem}manifest.json").read_text())
    on_disk = {p.name for p in results.iterdir() if p.is_file() and p.name.startswith(stem)}
    assert on_disk - {f"{stem}manifest.json"} == set(manifest["files"]) - {"tradeoff.png"}
    assert {f"{stem}attack_results.csv", f"{stem}report.md", f"{stem}reliability_target.png",
            "tradeoff.png"} <= set(manifest["files"])
    assert verify_set(results, stem) == []
    assert all(path.parent == results for path in outputs.files.values())
    assert not leftovers(results)


def test_verify_set_names_a_changed_or_missing_file(full_run, tmp_path):
    results, _ = copy_of(full_run, tmp_path)
    stem = full_run[1].stem
    (results / f"{stem}attack_results.csv").write_text("edited\n")
    (results / f"{stem}report.md").unlink()
    assert verify_set(results, stem) == [f"{stem}attack_results.csv: sha256 differs from the manifest",
                                         f"{stem}report.md: missing"]


STAGES = ["load_experiment_data", "load_or_train_models", "build_predictors", "build_non_member_sets",
          "score", "fit_attacks", "evaluate_sets", "write_table", "figures", "report", "manifest"]


def inject_interrupt(monkeypatch, stage: str) -> None:
    """Make ``stage`` raise KeyboardInterrupt (as Ctrl-C would) the first time it runs."""
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    import calibration.reliability
    import engine.evaluate
    import engine.write
    import pipeline.stages.calibration
    import reporting
    targets = {"load_experiment_data": (run_module, "load_experiment_data"),
               "load_or_train_models": (run_module, "load_or_train_models"),
               "build_predictors": (pipeline.stages.calibration, "build_predictors"),
               "build_non_member_sets": (run_module, "build_non_member_sets"),
               "score": (ScoreCache, "get_or_compute"),
               "fit_attacks": (engine.evaluate, "fit_attacks"),
               "evaluate_sets": (engine.evaluate, "evaluate_sets"),
               "figures": (calibration.reliability, "plot_reliability_diagram"),  # after ROC PNGs exist
               "report": (reporting, "write_report"),
               "manifest": (run_module.Manifest, "write")}
    if stage == "write_table":  # the second table: the first CSV is already written
        real, calls = engine.write.write_table, []

        def second_fails(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return real(*args, **kwargs)
        monkeypatch.setattr(engine.write, "write_table", second_fails)
        return
    owner, name = targets[stage]
    monkeypatch.setattr(owner, name, interrupt)


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_an_interrupt_at_any_stage_keeps_the_previous_set(full_run, tmp_path, monkeypatch, stage):
    results, checkpoints = copy_of(full_run, tmp_path)
    before = snapshot(results)
    inject_interrupt(monkeypatch, stage)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny_config(results, checkpoints, seed=7, train=True))
    assert snapshot(results) == before            # nothing of the new run, nothing lost
    assert verify_set(results, full_run[1].stem) == []
    assert not leftovers(results)


def test_an_interrupt_while_moving_the_set_is_finished(full_run, tmp_path, monkeypatch):
    """Once the set is complete, an interrupt between two renames rolls forward: never a mix."""
    results, checkpoints = copy_of(full_run, tmp_path)
    real, calls = outputs_module._move, []

    def interrupted_replace(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(source, target)
    monkeypatch.setattr(outputs_module, "_move", interrupted_replace)
    config = tiny_config(results, checkpoints, seed=7, train=True, figures=False)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config)
    monkeypatch.undo()
    stem = config.run_stem()
    assert verify_set(results, stem) == [] and not leftovers(results)
    manifest = json.loads((results / f"{stem}manifest.json").read_text())
    assert manifest["seed"] == 7 and f"{stem}report.md" not in manifest["files"]
    assert not (results / f"{stem}report.md").exists()


def test_a_killed_run_is_cleaned_or_finished_by_the_next(full_run, tmp_path):
    """SIGKILL leaves a staging folder and temporaries: the next run removes them (or, for a
    complete staged set, finishes its commit)."""
    results, checkpoints = copy_of(full_run, tmp_path)
    stem = full_run[1].stem
    pid = dead_pid()
    half = results / f"{STAGING_PREFIX}{stem}-{pid}"
    half.mkdir()
    (half / f"{stem}attack_results.csv").write_text("half a run")
    for name in (f".{stem}false_positives.png.{pid}.abc123.tmp", f".{stem}roc.png.k2j3h4.tmp"):
        (results / name).write_bytes(b"")                      # 0-byte temporaries, as SIGKILL leaves them
    (results / "cache").mkdir(exist_ok=True)
    (results / "cache" / f".scores_x.npz.{pid}.zz9.tmp").write_bytes(b"")
    live = results / f".other.csv.{os.getpid()}.keep.tmp"     # a live process's temporary stays
    live.write_bytes(b"")
    (checkpoints / f".small_cnn_digits_target.pt.{pid}.q1.tmp").write_bytes(b"")
    outputs_module.recover_folder(results)
    assert not half.exists() and [p.name for p in results.glob("*.tmp")] == [live.name]
    assert not list((results / "cache").glob("*.tmp"))
    live.unlink()
    assert verify_set(results, stem) == []

    run_experiment(tiny_config(results, checkpoints, figures=False))
    assert not leftovers(results) and not leftovers(checkpoints)


def test_a_killed_commit_is_rolled_forward(full_run, tmp_path):
    results, _ = copy_of(full_run, tmp_path)
    stem = full_run[1].stem
    staging = results / f"{STAGING_PREFIX}{stem}-{dead_pid()}"
    staging.mkdir()
    (staging / f"{stem}attack_results.csv").write_text("new table\n")
    from engine.manifest import Manifest

    manifest = Manifest({"seed": 9})
    table = f"{stem}attack_results.csv"
    manifest.files = {table: outputs_module.sha256_file(staging / table)}
    manifest.write(staging / f"{stem}manifest.json")
    stale = sorted(outputs_module.previous_set(results, stem) - set(manifest.files) - {"tradeoff.png"})
    (staging / outputs_module.COMMIT_MARKER).write_text(json.dumps({"manifest": f"{stem}manifest.json",
                                                                     "remove": stale}))
    outputs_module.recover_folder(results)
    assert verify_set(results, stem) == [] and not staging.exists()
    assert not (results / f"{stem}report.md").exists() and (results / "tradeoff.png").exists()


def test_no_figures_over_a_full_run_removes_the_old_figures_and_report(full_run, tmp_path):
    results, checkpoints = copy_of(full_run, tmp_path)
    stem = full_run[1].stem
    outputs = run_experiment(tiny_config(results, checkpoints, figures=False))
    manifest = json.loads(outputs.files["manifest"].read_text())
    own = {p.name for p in results.iterdir() if p.is_file() and p.name.startswith(stem)}
    assert own == set(manifest["files"]) | {f"{stem}manifest.json"}
    assert (results / "tradeoff.png").exists()  # a summary of the whole folder, not of one set
    assert not list(results.glob(f"{stem}*.png")) and not (results / f"{stem}report.md").exists()
    assert verify_set(results, stem) == []


def test_another_stem_in_the_folder_is_left_alone(full_run, tmp_path):
    """Stems can be prefixes of each other (``small_cnn_digits_`` / ``small_cnn_digits_LS_0.1_``)."""
    results, checkpoints = copy_of(full_run, tmp_path)
    base_stem = full_run[1].stem
    before = {name: data for name, data in snapshot(results).items() if name.startswith(base_stem)}
    outputs = run_experiment(tiny_config(results, checkpoints, label_smoothing=True, figures=False))
    assert outputs.stem != base_stem and outputs.stem.startswith(base_stem)
    after = {name: data for name, data in snapshot(results).items()
             if name.startswith(base_stem) and not name.startswith(outputs.stem)}
    assert after == before and verify_set(results, base_stem) == [] == verify_set(results, outputs.stem)


# ---------------------------------------------------------------------------------------------
# (b) checkpoints: replaced only by --train, only with finite weights


def cli(tmp_path, *flags) -> tuple[int, str]:
    import io
    from contextlib import redirect_stderr, redirect_stdout

    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = main("digits", [*TINY_FLAGS, "--results_dir", str(tmp_path / "results"),
                               "--pretrained_dir", str(tmp_path / "checkpoints"), "--no_figures", *flags])
    return code, err.getvalue().strip()


@pytest.fixture(scope="module")
def trained_at_two_epochs(tmp_path_factory):
    base = tmp_path_factory.mktemp("ckpt")
    code, err = cli(base)
    assert code == 0, err
    return base / "checkpoints"


def checkpoint_folder(trained, tmp_path) -> Path:
    shutil.copytree(trained, tmp_path / "checkpoints")
    return tmp_path / "checkpoints"


def test_other_flags_without_train_are_an_error_naming_them(trained_at_two_epochs, tmp_path, monkeypatch):
    folder = checkpoint_folder(trained_at_two_epochs, tmp_path)
    before = snapshot(folder)
    monkeypatch.setattr(run_module, "load_experiment_data", lambda *a, **k: pytest.fail("data loaded"))
    code, err = cli(tmp_path, "--epochs", "3", "--lr", "0.02", "--seed", "5")
    assert code == 2 and len(err.splitlines()) == 1, err
    for part in ("--epochs 2 (requested 3)", "--lr 0.01 (requested 0.02)", "--seed 42 (requested 5)"):
        assert part in err, err
    assert "pass --train to retrain" in err
    assert "rerun with the settings it was trained with (--seed 42 --epochs 2 --lr 0.01)" in err
    assert snapshot(folder) == before and not (tmp_path / "results").exists()


def test_another_training_split_is_an_error_naming_it(trained_at_two_epochs, tmp_path):
    folder = checkpoint_folder(trained_at_two_epochs, tmp_path)
    before = snapshot(folder)
    code, err = cli(tmp_path, "--train_set_size", "70")  # same flags in the recipe, other split
    assert code == 2 and len(err.splitlines()) == 1 and "the training split (--seed, --train_set_size" in err, err
    assert "pass --train" in err and snapshot(folder) == before


def test_metadata_of_an_older_version_loads(trained_at_two_epochs, tmp_path):
    """Keys a checkpoint's config does not record (added later) are not compared."""
    folder = checkpoint_folder(trained_at_two_epochs, tmp_path)
    for path in folder.glob("*.json"):
        recorded = json.loads(path.read_text())
        del recorded["seed"]
        path.write_text(json.dumps(recorded))
    before = snapshot(folder)
    code, err = cli(tmp_path)
    assert code == 0, err
    assert snapshot(folder) == before


def test_train_replaces_the_checkpoint(trained_at_two_epochs, tmp_path):
    folder = checkpoint_folder(trained_at_two_epochs, tmp_path)
    before = snapshot(folder)
    code, err = cli(tmp_path, "--epochs", "3", "--train")
    assert code == 0, err
    after = snapshot(folder)
    assert after["small_cnn_digits_target.pt"] != before["small_cnn_digits_target.pt"]
    assert json.loads(after["small_cnn_digits_target.json"])["train"]["epochs"] == 3


def test_new_weights_beside_an_old_config_are_detected(trained_at_two_epochs, tmp_path):
    """A save killed between its two renames leaves new weights beside the old config."""
    from models import build_model

    folder = checkpoint_folder(trained_at_two_epochs, tmp_path)
    model = build_model("small_cnn", num_classes=10, in_channels=1, image_size=8)
    torch.save(model.state_dict(), folder / "small_cnn_digits_target.pt")  # other weights, same config
    code, err = cli(tmp_path)
    assert code == 2 and len(err.splitlines()) == 1 and "is not the file its config" in err, err
    assert "--train" in err


def test_diverged_training_keeps_the_good_checkpoint(trained_at_two_epochs, tmp_path, monkeypatch):
    import pipeline.stages.models as model_stage

    folder = checkpoint_folder(trained_at_two_epochs, tmp_path)
    before = snapshot(folder)

    def diverge(model, *args, **kwargs):
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
    monkeypatch.setattr(model_stage, "train_model", diverge)
    code, err = cli(tmp_path, "--train")
    assert code == 2 and len(err.splitlines()) == 1 and "NaN or inf weights" in err and "--lr" in err, err
    assert snapshot(folder) == before and not leftovers(folder)


def test_lr_inf_is_refused_before_training(tmp_path):
    code, err = cli(tmp_path, "--lr", "inf", "--train")
    assert code == 2 and "--lr must be a positive finite number" in err
    assert not (tmp_path / "checkpoints").exists()


def test_released_checkpoints_without_metadata_load_as_before(trained_at_two_epochs, tmp_path):
    folder = checkpoint_folder(trained_at_two_epochs, tmp_path)
    for json_file in folder.glob("*.json"):
        json_file.unlink()  # the authors' files have no metadata
    before = snapshot(folder)
    code, err = cli(tmp_path, "--epochs", "5")
    assert code == 0, err
    assert snapshot(folder) == before


class Payload:
    """Any Python object: a weights-only load refuses to unpickle it."""


def test_checkpoint_errors_never_suggest_an_unsafe_load(tmp_path):
    from models import build_model
    model = build_model("small_cnn", num_classes=10, in_channels=1, image_size=8)
    with_objects, garbage = tmp_path / "objects.pt", tmp_path / "garbage.pt"
    torch.save({"weights": Payload()}, with_objects)
    garbage.write_bytes(b"not a checkpoint\n\x00\x01")
    for path, expected in ((with_objects, "holds Python objects"), (garbage, "corrupt")):
        with pytest.raises(CheckpointError) as caught:
            load_checkpoint(model, path)
        message = str(caught.value)
        assert expected in message and str(path) in message and len(message.splitlines()) == 1
        assert "weights_only" not in message and "safe_globals" not in message and "trust" not in message


# ---------------------------------------------------------------------------------------------
# (c) damaged score-cache entries are recomputed with one warning naming the file


def damage(path: Path, kind: str, probs: np.ndarray) -> None:
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "bit_flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))
    elif kind == "checksum_mismatch":
        changed = probs[::-1].copy()
        np.savez(path, probs=changed, key=np.array(path.stem), sha256=np.array(entry_checksum(path.stem, probs)))
    elif kind in ("wrong_rows", "wrong_columns", "wrong_ndim", "nan"):
        bad = {"wrong_rows": probs[:-1], "wrong_columns": probs[:, :3], "wrong_ndim": probs[:, 0],
               "nan": np.where(np.arange(probs.size).reshape(probs.shape) == 3, np.nan, probs)}[kind]
        np.savez(path, probs=bad, key=np.array(path.stem),
                 sha256=np.array(entry_checksum(path.stem, bad)))  # checksum fits: shape/NaN caught
    elif kind == "no_checksum":
        np.savez(path, probs=probs)  # written by an older version


@pytest.mark.parametrize("kind", ["truncated", "empty", "bit_flip", "checksum_mismatch", "wrong_rows",
                                  "wrong_columns", "wrong_ndim", "nan", "no_checksum"])
def test_a_damaged_cache_entry_is_recomputed_with_one_warning(tmp_path, caplog, kind):
    probs = np.random.default_rng(0).dirichlet(np.ones(4), size=6)
    labels = torch.arange(6) % 4
    cache = ScoreCache(tmp_path / "cache")
    calls = []

    def compute():
        calls.append(1)
        return probs

    cache.get_or_compute("k", labels, True, compute, classes=4)
    path = tmp_path / "cache" / "scores_k.npz"
    damage(path, kind, probs)
    with caplog.at_level(logging.WARNING):
        scores = cache.get_or_compute("k", labels, True, compute, classes=4)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0] and "recomputing" in warnings[0], warnings
    np.testing.assert_array_equal(scores.probs, probs)
    assert len(calls) == 2 and cache.repaired == 1
    again = ScoreCache(tmp_path / "cache").get_or_compute("k", labels, True, compute, classes=4)  # healed
    assert len(calls) == 2
    np.testing.assert_array_equal(again.probs, probs)


def test_a_cache_path_that_is_a_file(tmp_path, caplog):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "cache").write_text("not a folder")
    code, err = cli(tmp_path)
    assert code == 2 and "score cache" in err and "--no_cache" in err and len(err.splitlines()) == 1
    with caplog.at_level(logging.WARNING):
        cache = ScoreCache(tmp_path / "results" / "cache")  # used directly: scores without a cache
    assert not cache.enabled and "is a file" in caplog.text
    code, err = cli(tmp_path, "--no_cache")
    assert code == 0, err


def test_a_damaged_cache_entry_heals_inside_a_run(full_run, tmp_path, caplog):
    results, checkpoints = copy_of(full_run, tmp_path)
    entries = sorted((results / "cache").glob("scores_*.npz"))
    entries[0].write_bytes(entries[0].read_bytes()[:100])
    with caplog.at_level(logging.WARNING):
        outputs = run_experiment(tiny_config(results, checkpoints, figures=False))
    assert sum(str(entries[0]) in r.getMessage() for r in caplog.records) == 1
    assert json.loads(outputs.files["manifest"].read_text())["notes"]["score_cache"]["repaired"] == 1


# ---------------------------------------------------------------------------------------------
# (d) every flag, folder, device, set name and attack parameter is checked before any work


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody can write into: permission bits, or a read-only mount when running as root."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("running as root and cannot mount a read-only folder")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def no_work(monkeypatch):
    """Fail the test if data is loaded or a model trained."""
    import pipeline.stages.models as model_stage

    monkeypatch.setattr(run_module, "load_experiment_data", lambda *a, **k: pytest.fail("data loaded"))
    monkeypatch.setattr(model_stage, "train_model", lambda *a, **k: pytest.fail("model trained"))


BAD_FLAGS = {
    "results_dir_file": (["--results_dir", "{tmp}/file"], "--results_dir"),
    "pretrained_dir_file": (["--pretrained_dir", "{tmp}/file"], "--pretrained_dir"),
    "data_root_file": (["--data_root", "{tmp}/file"], "--data_root"),
    "checkpoint_is_a_folder": (["--pretrained_dir", "{tmp}/ckpt"], "is a folder"),
    "device_mps": (["--device", "mps"], "--device 'mps'"),
    "device_meta": (["--device", "meta"], "--device 'meta'"),
    "unknown_set": (["--sets", "original", "nonsense"], "--sets: unknown data set 'nonsense'"),
    "salem_k_above_classes": (["--attacks", "salem", "--salem_k", "11"], "--salem_k 11 is larger than the 10"),
    "seed_negative": (["--seed", "-1"], "--seed must be in [0, 2**32 - 1]"),
    "seed_too_large": (["--seed", str(2**32)], "--seed must be in [0, 2**32 - 1]"),
    "image_size_zero": (["--model_input_image_size", "0"], "--model_input_image_size must be a positive"),
    "llla_with_temp_value": (["--llla", "--temp_value", "10"], "--temp_value"),
    "lr_nan": (["--lr", "nan"], "--lr"),
}


@pytest.mark.parametrize("case", list(BAD_FLAGS))
def test_bad_input_is_refused_before_any_work(tmp_path, monkeypatch, case):
    flags, expected = BAD_FLAGS[case]
    (tmp_path / "file").write_text("a file")
    (tmp_path / "ckpt" / "small_cnn_digits_target.pt").mkdir(parents=True)
    no_work(monkeypatch)
    flags = [flag.replace("{tmp}", str(tmp_path)) for flag in flags]
    code, err = cli(tmp_path, *flags)
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert expected in err, err
    assert "--temp_scaling" not in err or case != "llla_with_temp_value"
    assert not (tmp_path / "results").exists() and not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("flag", ["--results_dir", "--pretrained_dir"])
def test_a_read_only_folder_is_refused_before_any_work(tmp_path, monkeypatch, read_only_folder, flag):
    no_work(monkeypatch)
    code, err = cli(tmp_path, flag, str(read_only_folder / "sub"))
    assert code == 2 and len(err.splitlines()) == 1 and flag in err and "read-only" in err, err
    assert not (tmp_path / "results").exists() and not (tmp_path / "checkpoints").exists()


# ---------------------------------------------------------------------------------------------
# (e) Ctrl-C


def test_ctrl_c_is_one_line_and_exit_130(full_run, tmp_path, monkeypatch, capsys):
    results, checkpoints = copy_of(full_run, tmp_path)
    before = snapshot(results)
    inject_interrupt(monkeypatch, "evaluate_sets")
    code = main("digits", [*TINY_FLAGS, "--results_dir", str(results), "--pretrained_dir", str(checkpoints),
                           "--seed", "3", "--train"])
    err = capsys.readouterr().err.strip()
    assert code == 130 and err == INTERRUPTED == "interrupted; finished checkpoints kept; rerun to continue"
    assert snapshot(results) == before and not leftovers(results)


SIGNAL_SCRIPT = """
import os, signal, sys
from matplotlib.figure import Figure

# As under a terminal: a job started in the background (CI, `cmd &`) inherits an ignored SIGINT,
# and Python then installs no KeyboardInterrupt handler.
signal.signal(signal.SIGINT, signal.default_int_handler)

real_savefig = Figure.savefig

def savefig(self, fname, *args, **kwargs):
    if "reliability_target" in str(fname):     # mid-figures, after the CSVs and ROC curves
        open(fname, "wb").close()               # the 0-byte temporary a killed save leaves
        signal.raise_signal(getattr(signal, sys.argv[1]))  # to this thread, as a terminal's Ctrl-C reaches the main thread
    return real_savefig(self, fname, *args, **kwargs)

Figure.savefig = savefig
from pipeline.cli import main
sys.exit(main("digits", sys.argv[2:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("signal_name, code", [("SIGINT", 130), ("SIGKILL", -9)])
def test_a_real_signal_during_figures(full_run, tmp_path, signal_name, code):
    """The issue's case: a run with another seed is stopped while drawing figures over a folder
    holding a complete earlier run."""
    results, checkpoints = copy_of(full_run, tmp_path)
    before = snapshot(results)
    argv = [*TINY_FLAGS, "--results_dir", str(results), "--pretrained_dir", str(checkpoints), "--seed", "7",
            "--train"]
    completed = subprocess.run([sys.executable, "-c", SIGNAL_SCRIPT, signal_name, *argv], cwd=ROOT,
                               capture_output=True, text=True, timeout=300,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert completed.returncode == code, completed.stderr
    if signal_name == "SIGINT":
        assert completed.stderr.strip().splitlines() == [INTERRUPTED]
    assert snapshot(results) == before and verify_set(results, full_run[1].stem) == []
    if signal_name == "SIGKILL":  # the killed run's staging folder and 0-byte temporary remain ...
        assert leftovers(results)
        run_experiment(tiny_config(results, checkpoints, seed=7, figures=False))
    assert not leftovers(results)  # ... until the next run


# ---------------------------------------------------------------------------------------------
# (f) a damaged image in a folder data set


def test_a_damaged_stanford_dogs_image_is_one_line_naming_it(tmp_path):
    from datasets import DataRequest, build_dataset
    from datasets.domain import stanford_dogs_domain
    from datasets.errors import DamagedFileError
    from pipeline.stages.data import materialize
    from tests.fixtures_data import make_tiny_stanford_dogs

    made = make_tiny_stanford_dogs(tmp_path, breeds=2, per_breed=3, test_per_breed=1)
    image = sorted((tmp_path / "stanford_dogs" / "Images").rglob("*.jpg"))[1]
    data = bytearray(image.read_bytes())
    data[:16] = b"\x00" * 16  # damaged JPEG header
    image.write_bytes(bytes(data))
    request = DataRequest(domain=stanford_dogs_domain(made["breeds"], 16), data_root=tmp_path, split="all",
                          seed=0, verify_checksums=False)
    named = build_dataset("stanford_dogs", request)
    with pytest.raises(DamagedFileError) as caught:
        materialize(named.dataset)
    message = str(caught.value)
    assert str(image) in message and len(message.splitlines()) == 1 and "cannot be read" in message


# ---------------------------------------------------------------------------------------------
# (g) low-precision probabilities


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_probabilities_are_accepted(dtype):
    logits = torch.randn(400, 120, generator=torch.Generator().manual_seed(0)) * 4
    probs = torch.softmax(logits, 1).to(getattr(torch, dtype))
    source = probs if dtype == "bfloat16" else probs.numpy()  # NumPy has float16, not bfloat16
    assert as_probs(source).dtype == np.float64
    attack = ThresholdAttack()
    attack.fit(source[:100], source[100:200])
    result = evaluate_attack(attack, source[200:300], source[300:])
    assert 0 <= result.auroc <= 1
    with pytest.raises(ValueError, match="not logits"):
        as_probs(logits.to(getattr(torch, dtype)))
    loose = np.full((1, 4), 0.25 + 0.005 / 4)  # float64, off by 0.005: still refused at full precision
    with pytest.raises(ValueError, match="sums to"):
        as_probs(loose)


# ---------------------------------------------------------------------------------------------
# (i) download_pretrained_models.sh


def run_download(tmp_path: Path, archive: Path, dest: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRETRAINED_URL": archive.as_uri(), "PRETRAINED_DIR": str(dest)}
    return subprocess.run(["bash", str(ROOT / "download_pretrained_models.sh")], env=env, capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)


def unsafe_archive(path: Path, kind: str) -> Path:
    with zipfile.ZipFile(path, "w") as handle:
        handle.writestr("resnet18_cifar10_target.pt", b"weights")
        if kind == "zip_slip":
            handle.writestr("../escaped.pt", b"x")
        else:
            link = zipfile.ZipInfo("resnet18_cifar10_shadow.pt")
            link.external_attr = (stat.S_IFLNK | 0o777) << 16
            handle.writestr(link, "/etc/passwd")
    return path


@pytest.mark.skipif(shutil.which("curl") is None and shutil.which("wget") is None, reason="no downloader")
@pytest.mark.parametrize("kind", ["zip_slip", "symlink"])
def test_an_unsafe_archive_is_refused_and_deleted(tmp_path, kind):
    dest = tmp_path / "pretrained_models"
    archive = unsafe_archive(tmp_path / "models.zip", kind)
    for _ in range(2):  # the bad archive is not kept, so a rerun fetches again (and refuses again)
        result = run_download(tmp_path, archive, dest)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and "unsafe" in lines[0], result.stderr
        assert "disk full" not in lines[0] and "Downloading" in result.stdout
        assert list(dest.iterdir()) == [] and not (tmp_path / "escaped.pt").exists()


@pytest.mark.skipif(shutil.which("curl") is None and shutil.which("wget") is None, reason="no downloader")
def test_a_read_only_destination_is_reported_as_such(tmp_path, read_only_folder):
    archive = unsafe_archive(tmp_path / "models.zip", "zip_slip")
    for dest in (read_only_folder, read_only_folder / "sub"):
        result = run_download(tmp_path, archive, dest)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and "read-only" in lines[0], result.stderr
        assert "offline" not in lines[0]
