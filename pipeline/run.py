"""The whole experiment, top to bottom: check config -> seed -> data -> load or train ->
calibrate -> score once -> fit and apply attacks -> reference attacks -> held-out table -> write results.

Each stage (:mod:`pipeline.stages`) takes typed inputs and returns one frozen result; only this
module writes the manifest, from what the stages return.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch

from attacks import AttackResult, MembershipAttack
from attacks.evaluation import AttackOutputs
from configuration.config import ExperimentConfig, domain_for, validate_config
from datasets import AttackerData
from datasets.splits.file import split_arrays, write_split_file
from datasets.verification import recording_accepted_mismatches
from engine.intervals import interval_table
from engine.manifest import Manifest, StageRecord, tensor_digest, timed_into
from pipeline.membership_check import MembershipCheck, check_loaded_models
from engine.outputs import OutputSet
from pipeline.preflight import check_before_work
from engine.tables import attack_table, performance_table, write_table
from engine.sample_scores import sample_scores_name, sample_scores_table, write_sample_scores
from models.inference import ScoreCache
from engine.scores import Scores
from pipeline.stages import calibration as calibration_stage
from pipeline.stages.data import ExperimentData, build_non_member_sets, load_experiment_data
from engine.fitting import evaluate_sets, fit_attacks, reference_attack_names, with_attack_outputs
from engine.held_out import HeldOutResults, held_out_results
from pipeline.stages.models import TrainedModel, checkpoint_write_lock, load_or_train_models
from pipeline.stages.prepared import PreparedRun
from pipeline.stages.reference import ReferenceOutcome, run_reference_attacks, start_pool_ahead
from engine.reference_checks import write_reference_tables
from pipeline.stages.report import write_figures_and_report
from pipeline.stages.scoring import score_run, score_target_sets
from pipeline.stages.tables import performance_rows, table_row_order
from utils.devices import resolve_device
from utils.naming import attack_csv_name, intervals_csv_name, manifest_name, performance_csv_name, splits_name
from utils.seeding import derive_seed, seed_everything

log = logging.getLogger(__name__)
__all__ = ["PreparedRun", "RunOutputs", "prepare_run", "run_experiment", "score_target_sets", "table_row_order"]


@dataclass(frozen=True)
class RunOutputs:
    """What a run produced, for scripts, reports and tests."""

    stem: str
    attack_table: pd.DataFrame
    performance_table: pd.DataFrame
    results: dict[str, list[AttackResult]]
    target_scores: dict[str, Scores]           # "Members" and each non-member set
    shadow_scores: dict[str, Scores]
    skipped: dict[str, str]
    files: dict[str, Path] = field(default_factory=dict)
    attacks: list[MembershipAttack] = field(default_factory=list)
    prepared: PreparedRun | None = None        # data, models, predictors
    split_scores: dict[str, dict[str, Scores]] = field(default_factory=dict)  # role -> "members" / ... / "test"
    membership: list[MembershipCheck] = field(default_factory=list)         # check of each loaded model
    class_source: dict[str, str] = field(default_factory=dict)  # set -> "label" / "predicted" (Shokri)
    attack_outputs: dict[str, dict[str, AttackOutputs]] = field(default_factory=dict)  # attack -> set -> outputs
    held_out: HeldOutResults | None = None     # the held-out FPR table (reference runs)
    reference: ReferenceOutcome | None = None  # the reference-model attacks' outcome
    intervals: pd.DataFrame | None = None      # bootstrap 95% intervals (engine.intervals)


def run_experiment(config: ExperimentConfig) -> RunOutputs:
    """Run one configured experiment and write its files to ``config.results_dir`` as one set.

    Everything is checked first (:func:`pipeline.preflight.check_before_work`, which validates the
    config); files are written into a staging folder and committed together with the manifest
    listing their sha256 (:class:`engine.outputs.OutputSet`), so an interrupted run leaves the
    previous set intact.
    """
    check_before_work(config)
    results_dir = Path(config.results_dir)
    with checkpoint_write_lock(config), OutputSet(results_dir, config.run_stem()) as output_set:
        outputs, manifest = _run_into(config, output_set.directory)
        manifest.outputs = {name: str(results_dir / path.name) if path.parent == output_set.directory
                            else str(path) for name, path in outputs.files.items()}
        manifest.outputs["manifest"] = str(results_dir / manifest_name(outputs.stem))
        committed = output_set.commit(manifest)
    files = {name: Path(manifest.outputs[name]) for name in outputs.files}
    files["manifest"] = committed[manifest_name(outputs.stem)]
    return replace(outputs, files=files)


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


def _run_into(config: ExperimentConfig, out_dir: Path) -> tuple[RunOutputs, Manifest]:
    """Every stage of a run, writing its files into ``out_dir`` (the staging folder)."""
    manifest = Manifest(config.to_dict())
    prepared = _prepare_checked(config, out_dir, pool_ahead=True)
    try:
        return _score_and_attack(config, out_dir, manifest, prepared)
    finally:
        if prepared.pool_ahead is not None:
            prepared.pool_ahead.close()


def _score_and_attack(config: ExperimentConfig, out_dir: Path, manifest: Manifest, prepared: PreparedRun
                      ) -> tuple[RunOutputs, Manifest]:
    """Every stage after preparing, into ``out_dir``."""
    manifest.record(prepared.record)
    results_dir, stem = Path(config.results_dir), config.run_stem()
    cache = ScoreCache(results_dir / "cache" if config.cache_scores else None)

    with manifest.timed("scores"):
        scores = score_run(prepared, prepared.scorers(cache))
    membership = check_loaded_models(prepared.models, scores.split_scores)

    with manifest.timed("attacks_fit"):
        attacks = fit_attacks(config.attacks, scores.shadow_scores["Members"], scores.shadow_scores["Original"],
                              params=config.attack_params, seed=derive_seed(config.seed, "attacks"))
    with manifest.timed("attacks_evaluate"):
        non_member_scores = {name: s for name, s in scores.target_scores.items() if name != "Members"}
        evaluation = evaluate_sets(attacks, scores.target_scores["Members"], non_member_scores)

    reference = None
    if config.reference_models and (names := reference_attack_names(config.attacks)):
        reference = run_reference_attacks(config, prepared, scores.target_scores, list(names), cache)
        manifest.record(reference.record)
        evaluation = with_attack_outputs(evaluation, {a.name: reference.outputs[a.name] for a in reference.attacks})

    order, skipped_rows = table_row_order(config, list(evaluation.results), prepared.skipped)
    attacks_df = attack_table(evaluation.results, skipped=skipped_rows, order=order)
    uncalibrated = calibration_stage.uncalibrated_metrics(config, prepared.models, prepared.data, prepared.device)
    performance_df = performance_table(performance_rows(scores.split_scores, uncalibrated))
    files = {"attack_results": write_table(attacks_df, out_dir / attack_csv_name(stem)),
             "performance_results": write_table(performance_df, out_dir / performance_csv_name(stem)),
             "splits": out_dir / splits_name(stem)}
    manifest.splits = {"file": str(results_dir / files["splits"].name), "protocol": prepared.data.indices.protocol,
                       "sha256": write_split_file(files["splits"], split_arrays(
                           prepared.data.indices, prepared.data.pools, prepared.set_indices))}

    held_out = held_out_results(prepared, scores.split_scores, scores.target_scores, evaluation, attacks,
                                reference, out_dir, stem)
    if held_out is not None:
        files.update(held_out.files)
    if reference is not None:   # the null test and the reference models as targets
        files.update(write_reference_tables(reference, out_dir, stem))
    with manifest.timed("intervals"):
        intervals = interval_table(evaluation.outputs, held_out.scores if held_out else None, config.seed)
        files["intervals"] = write_table(intervals.set_index("set"), out_dir / intervals_csv_name(stem))
    files["sample_scores"] = write_sample_scores(sample_scores_table(
        evaluation.outputs, {name: s.labels for name, s in scores.target_scores.items()},
        {"Members": prepared.positions["target_members"], "Original": prepared.positions["target_non_members"]}),
        out_dir / sample_scores_name(stem))
    class_source = {name: "label" if s.in_label_space else "predicted" for name, s in non_member_scores.items()}
    manifest.notes.update({"skipped_sets": prepared.skipped, "shokri_class_source": class_source,
                           "score_cache": {"hits": cache.hits, "misses": cache.misses, "repaired": cache.repaired},
                           "membership_check": {c.role: c.as_dict() for c in membership}})
    outputs = RunOutputs(stem, attacks_df, performance_df, evaluation.results, scores.target_scores,
                         scores.shadow_scores, prepared.skipped, files, attacks, prepared=prepared,
                         split_scores=scores.split_scores, membership=membership, class_source=class_source,
                         attack_outputs=evaluation.outputs, held_out=held_out, reference=reference,
                         intervals=intervals)
    if config.figures:
        with manifest.timed("figures_and_report"):
            outputs = replace(outputs, files={**files, **write_figures_and_report(outputs, prepared, out_dir,
                                                                                  results_dir)})
    return outputs, manifest


def _attacker_data(config: ExperimentConfig, data: ExperimentData, models: dict[str, TrainedModel],
                   results_dir: Path, figure_dir: Path) -> AttackerData:
    """What attacker-side generators may use: the shadow split and model, never the target's."""
    shadow = data.splits["shadow_train"]
    return AttackerData(images=data.domain.denormalize(shadow.images), labels=shadow.labels,
                        shadow_model=models["shadow"].model, cache_dir=results_dir / "cache",
                        figure_dir=figure_dir, progress=config.progress)
