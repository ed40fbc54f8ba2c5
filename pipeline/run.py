"""The paper's run, top to bottom: check config -> seed -> data -> load or train -> calibrate ->
non-member sets -> score once -> reference pool -> one bundle -> the engine's evaluation -> its files.

Each stage (:mod:`pipeline.stages`) prepares typed inputs; the evaluation and the files are the
engine's (:mod:`engine`), the same a user's audit reaches. Only this module writes the manifest.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch

from configuration.config import ExperimentConfig, domain_for, validate_config
from datasets import AttackerData
from datasets.splits.file import split_arrays, write_split_file
from datasets.splits.seeded import complement
from datasets.verification import recording_accepted_mismatches
from engine.bundle import MEMBERS, ReferenceBundle, ScoreBundle
from engine.evaluate import AuditResult, evaluate
from engine.fitting import reference_attack_names
from engine.manifest import Manifest, StageRecord, tensor_digest, timed_into
from engine.outputs import OutputSet
from engine.scores import Scores
from engine.write import write_figures_and_report, write_tables
from models.inference import ScoreCache
from pipeline.membership_check import MembershipCheck, check_loaded_models
from pipeline.preflight import check_before_work
from pipeline.stages import calibration as calibration_stage
from pipeline.stages.data import ExperimentData, build_non_member_sets, load_experiment_data
from pipeline.stages.models import TrainedModel, checkpoint_write_lock, load_or_train_models
from pipeline.stages.prepared import PreparedRun
from pipeline.stages.reference import reference_bundle, start_pool_ahead
from pipeline.stages.report import report_context
from pipeline.stages.scoring import RunScores, score_run, score_target_sets
from pipeline.stages.tables import table_row_order
from utils.devices import resolve_device
from utils.naming import manifest_name, splits_name
from utils.seeding import seed_everything

log = logging.getLogger(__name__)
__all__ = ["PreparedRun", "PresetRun", "prepare_run", "run_experiment", "score_target_sets", "table_row_order"]


@dataclass(frozen=True)
class PresetRun:
    """A preset run: the engine's result on what the run prepared, and the files of the run's set."""

    stem: str
    result: AuditResult
    prepared: PreparedRun
    files: dict[str, Path] = field(default_factory=dict)
    membership: list[MembershipCheck] = field(default_factory=list)   # check of each loaded model

    @property
    def attack_table(self) -> pd.DataFrame:
        return self.result.attack_table

    @property
    def performance_table(self) -> pd.DataFrame:
        return self.result.performance_table

    @property
    def target_scores(self) -> dict[str, Scores]:
        """The target's scores: ``"Members"`` and each non-member set (from the bundle)."""
        return {MEMBERS: self.result.bundle.members, **self.result.bundle.sets}

    @property
    def shadow_scores(self) -> dict[str, Scores]:
        """The shadow model's members and non-members (``"Original"``), from the bundle."""
        bundle = self.result.bundle
        return {MEMBERS: bundle.shadow_members, "Original": bundle.shadow_non_members}

    @property
    def skipped(self) -> dict[str, str]:
        """Requested non-member sets that could not be built (set key -> reason)."""
        return self.prepared.skipped


def run_experiment(config: ExperimentConfig) -> PresetRun:
    """Run one configured experiment and write its files to ``config.results_dir`` as one set.

    Everything is checked first (:func:`pipeline.preflight.check_before_work`, which validates the
    config); files are written into a staging folder and committed together with the manifest
    listing their sha256 (:class:`engine.outputs.OutputSet`), so an interrupted run leaves the
    previous set intact.
    """
    check_before_work(config)
    results_dir = Path(config.results_dir)
    with checkpoint_write_lock(config), OutputSet(results_dir, config.run_stem()) as output_set:
        run, manifest = _run_into(config, output_set.directory)
        manifest.outputs = {name: str(results_dir / path.name) if path.parent == output_set.directory
                            else str(path) for name, path in run.files.items()}
        manifest.outputs["manifest"] = str(results_dir / manifest_name(run.stem))
        committed = output_set.commit(manifest)
    files = {name: Path(manifest.outputs[name]) for name in run.files}
    files["manifest"] = committed[manifest_name(run.stem)]
    return replace(run, files=files)


def prepare_run(config: ExperimentConfig, output_dir: str | Path | None = None) -> PreparedRun:
    """Check config, seed, load data, load or train models, calibrate, build non-member sets.

    Figures made while preparing (e.g. generated samples) go to ``output_dir`` (default
    ``config.results_dir``; :func:`run_experiment` passes its staging folder).
    """
    validate_config(config)
    return _prepare_checked(config, output_dir)


def _prepare_checked(config: ExperimentConfig, output_dir: str | Path | None, pool_ahead: bool = False) -> PreparedRun:
    if config.reference_models and config.ray_address:
        from models.ray_pool import check_address

        check_address(config.ray_address)  # fail before training anything
    seed_everything(config.seed)
    device = resolve_device(config.device)
    with recording_accepted_mismatches() as accepted:
        prepared = _prepare(config, device, output_dir, pool_ahead)
    if config.verify_checksums:
        return prepared
    notes = {**prepared.record.notes, "no_verify": {"accepted_checksum_mismatches": accepted}}
    return replace(prepared, record=replace(prepared.record, notes=notes))


def _prepare(config: ExperimentConfig, device: torch.device, output_dir: str | Path | None = None,
             pool_ahead: bool = False) -> PreparedRun:
    """Data, models, predictors, non-member sets; with ``pool_ahead``, part of the reference pool
    starts training in the background before the sets are built (:func:`start_pool_ahead`)."""
    timings: dict[str, float] = {}
    with timed_into(timings, "data"):
        data = load_experiment_data(config, domain_for(config))
        positions = dict(data.indices.attack)
    with timed_into(timings, "models"):
        models = load_or_train_models(config, data, device)
    with timed_into(timings, "calibration"):
        predictors = calibration_stage.build_predictors(config, models, data, positions, device)
    ahead = start_pool_ahead(config, data, positions, device) if pool_ahead else None
    try:
        with timed_into(timings, "non_member_sets"):
            original = data.splits["target_test"].subset(positions["target_non_members"])
            rows = build_non_member_sets(
                config, data, original,
                attacker=_attacker_data(config, data, models, Path(config.results_dir),
                                        Path(output_dir or config.results_dir)))
    except BaseException:
        if ahead is not None:
            ahead.close()
        raise
    record = StageRecord(
        timings=timings,
        checksums={**{f"split:{k}": v for k, v in data.checksums().items()},
                   **{f"set:{name}": tensor_digest(t.images) for name, t in rows.sets.items()}},
        models={role: {"checkpoint": str(m.checkpoint), "trained": m.trained, "sha256": m.fingerprint,
                       "precision": m.precision} for role, m in models.items()},
        notes={"predictors": {role: p.describe() for role, p in predictors.items()}})
    return PreparedRun(config, device, data, positions, models, predictors, rows.sets, rows.in_label_space,
                       rows.skipped, original, record, rows.artifacts, rows.indices, ahead)


def _run_into(config: ExperimentConfig, out_dir: Path) -> tuple[PresetRun, Manifest]:
    """Every stage of a run, writing its files into ``out_dir`` (the staging folder)."""
    manifest = Manifest(config.to_dict())
    prepared = _prepare_checked(config, out_dir, pool_ahead=True)
    try:
        return _score_and_attack(config, out_dir, manifest, prepared)
    finally:
        if prepared.pool_ahead is not None:
            prepared.pool_ahead.close()


def _score_and_attack(config: ExperimentConfig, out_dir: Path, manifest: Manifest, prepared: PreparedRun
                      ) -> tuple[PresetRun, Manifest]:
    """Score once, hand the bundle to the engine, write its files and the run's own into ``out_dir``."""
    manifest.record(prepared.record)
    results_dir, stem = Path(config.results_dir), config.run_stem()
    cache = ScoreCache(results_dir / "cache" if config.cache_scores else None)

    with manifest.timed("scores"):
        scores = score_run(prepared, prepared.scorers(cache))
    membership = check_loaded_models(prepared.models, scores.split_scores)
    reference = None
    if config.reference_models and reference_attack_names(config.attacks):
        reference, record = reference_bundle(config, prepared, scores.target_scores, cache)
        manifest.record(record)
    bundle = preset_bundle(config, prepared, scores, reference)
    result = evaluate(bundle, config.attacks, params=config.attack_params, seed=config.seed,
                      config=config.to_dict())
    manifest.record(StageRecord(timings=result.timings))
    if result.reference is not None:
        manifest.notes["reference_temperatures"] = result.reference.temperatures
    if bundle.dp_epsilon is not None:
        manifest.notes["dp"] = {"accountant_epsilon": bundle.dp_epsilon, "delta": bundle.dp_delta,
                                "bound_violations": result.dp_violations}

    files = write_tables(result, out_dir, stem)
    files["splits"] = out_dir / splits_name(stem)
    manifest.splits = {"file": str(results_dir / files["splits"].name), "protocol": prepared.data.indices.protocol,
                       "sha256": write_split_file(files["splits"], split_arrays(
                           prepared.data.indices, prepared.data.pools, prepared.set_indices))}
    manifest.notes.update({"skipped_sets": prepared.skipped, "label_source": {
                               name: bundle.label_source(name) for name in bundle.sets},
                           "skipped_attacks": result.skipped_attacks,
                           "score_cache": {"hits": cache.hits, "misses": cache.misses, "repaired": cache.repaired},
                           "membership_check": {c.role: c.as_dict() for c in membership}})
    run = PresetRun(stem, result, prepared, files, membership)
    if config.figures:
        with manifest.timed("figures_and_report"):
            files.update(write_figures_and_report(result, out_dir, stem, files,
                                                  report_context(prepared, result, stem, scores.split_scores, results_dir)))
    return replace(run, files=files), manifest


def preset_bundle(config: ExperimentConfig, prepared: PreparedRun, scores: RunScores,
                  reference: ReferenceBundle | None) -> ScoreBundle:
    """The engine's bundle of a preset run: target members and sets, held-out test rows, the
    shadow's members and non-members, the whole splits (performance table), the reference signals."""
    sets = {name: s for name, s in scores.target_scores.items() if name != MEMBERS}
    test = scores.split_scores["target"]["test"]
    rows = complement(prepared.positions["target_non_members"], len(test))
    held_out = Scores(test.probs[rows], test.labels[rows]) if len(rows) else None
    order, skipped_rows = table_row_order(config, list(sets), prepared.skipped)
    uncalibrated = calibration_stage.uncalibrated_metrics(config, prepared.models, prepared.data, prepared.device)
    return ScoreBundle(
        members=scores.target_scores[MEMBERS], sets=sets, held_out=held_out,
        shadow_members=scores.shadow_scores[MEMBERS], shadow_non_members=scores.shadow_scores["Original"],
        reference=reference, splits={role: {split: scores.split_scores[role][split] for split in ("train", "test")}
                                     for role in ("target", "shadow")},
        uncalibrated=uncalibrated,
        source_index={MEMBERS: prepared.positions["target_members"], "Original": prepared.positions["target_non_members"]},
        row_order=tuple(order), skipped_sets=skipped_rows, dp_epsilon=_accountant_epsilon(config),
        dp_delta=config.dp_delta)


def _accountant_epsilon(config: ExperimentConfig) -> float | None:
    """The DP accountant's epsilon of the target (``--dp_epsilon`` runs), else None."""
    if config.dp_epsilon is None:
        return None
    from models.dp_training import dp_accounting
    from pipeline.stages.models import train_config

    return dp_accounting(config.train_set_size, train_config(config, "target")).epsilon


def _attacker_data(config: ExperimentConfig, data: ExperimentData, models: dict[str, TrainedModel],
                   results_dir: Path, figure_dir: Path) -> AttackerData:
    """What attacker-side generators may use: the shadow split and model, never the target's."""
    shadow = data.splits["shadow_train"]
    return AttackerData(images=data.domain.denormalize(shadow.images), labels=shadow.labels,
                        shadow_model=models["shadow"].model, cache_dir=results_dir / "cache",
                        figure_dir=figure_dir, progress=config.progress)
