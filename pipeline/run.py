"""The whole experiment, top to bottom: check config -> seed -> data -> load or train ->
calibrate -> score once -> fit and apply attacks -> write results."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from attacks import AttackResult
from calibration.metrics import model_metrics
from datasets import AttackerData
from datasets.verification import recording_accepted_mismatches
from pipeline import calibration_stage
from pipeline.config import ExperimentConfig, row_name, validate_config
from pipeline.data_stage import ExperimentData, build_non_member_sets, load_experiment_data
from pipeline.domains import domain_for
from pipeline.evaluation_stage import Scorer, evaluate_sets, fit_attacks, merge_rows
from pipeline.held_out_stage import HeldOutResults, add_reference_attacks, held_out_results, score_attack_names
from pipeline.manifest import Manifest, tensor_digest
from pipeline.outputs import OutputSet
from pipeline.preflight import check_before_work
from pipeline.reference_evaluation import write_reference_tables
from pipeline.reference_stage import ReferenceOutcome
from pipeline.model_stage import ROLES, load_or_train_models
from pipeline.report_stage import write_figures_and_report
from pipeline.results import attack_table, model_metric_rows, performance_table, write_table
from pipeline.scores import ScoreCache, Scores
from pipeline.membership_check import check_loaded_models
from pipeline.split_file import split_arrays, write_split_file
from pipeline.splits import complement
from utils.devices import resolve_device
from utils.naming import attack_csv_name, manifest_name, performance_csv_name, splits_name
from utils.seeding import derive_seed, seed_everything

log = logging.getLogger(__name__)


@dataclass
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
    attacks: list = field(default_factory=list)
    prepared: PreparedRun | None = None        # data, models, predictors, manifest
    split_scores: dict = field(default_factory=dict)    # role -> "members" / "non_members" / "train" / "test"
    membership: list = field(default_factory=list)      # MembershipCheck of each loaded model
    class_source: dict[str, str] = field(default_factory=dict)  # set -> "label" / "predicted" (Shokri)
    attack_outputs: dict = field(default_factory=dict)  # attack -> "Members" / set -> AttackOutputs
    held_out: HeldOutResults | None = None     # the held-out FPR table (reference runs)
    reference: ReferenceOutcome | None = None  # the reference-model attacks' outcome


@dataclass
class PreparedRun:
    """Everything before scoring: data, models, predictors and the non-member sets."""

    config: ExperimentConfig
    device: object
    data: ExperimentData
    positions: dict[str, np.ndarray]
    models: dict
    predictors: dict
    sets: dict                   # display name -> SplitTensors (attack-set size)
    in_label_space: dict[str, bool]
    skipped: dict[str, str]
    original: object             # the target's Original non-members (rows of its test split)
    manifest: Manifest
    extra_figures: dict = field(default_factory=dict)  # figures made while preparing (e.g. GAN samples)
    set_indices: dict = field(default_factory=dict)    # key -> SetIndices of non-member sets from other data

    def scorers(self, cache: ScoreCache) -> dict[str, Scorer]:
        return {role: Scorer(self.predictors[role], self.models[role].fingerprint, self.device, cache,
                             classes=self.data.domain.num_classes) for role in ROLES}


def prepare_run(config: ExperimentConfig, output_dir: str | Path | None = None) -> PreparedRun:
    """Check config, seed, load data, load or train models, calibrate, build non-member sets.

    Figures made while preparing (e.g. generated samples) go to ``output_dir`` (default
    ``config.results_dir``; :func:`run_experiment` passes its staging folder).
    """
    validate_config(config)
    if config.reference_models and config.ray_address:
        from pipeline.ray_pool import check_address

        check_address(config.ray_address)  # fail before training anything
    manifest = Manifest(config.to_dict())
    seed_everything(config.seed)
    device = resolve_device(config.device)
    with recording_accepted_mismatches() as accepted:
        prepared = _prepare(config, manifest, device, output_dir)
    if not config.verify_checksums:
        manifest.notes["no_verify"] = {"accepted_checksum_mismatches": accepted}
    return prepared


def _prepare(config: ExperimentConfig, manifest: Manifest, device,
             output_dir: str | Path | None = None) -> PreparedRun:
    with manifest.timed("data"):
        domain = domain_for(config)
        data = load_experiment_data(config, domain)
        manifest.checksums.update({f"split:{k}": v for k, v in data.checksums().items()})
        positions = dict(data.indices.attack)
    with manifest.timed("models"):
        models = load_or_train_models(config, data, device)
        manifest.models = {role: {"checkpoint": str(m.checkpoint), "trained": m.trained,
                                  "sha256": m.fingerprint, "precision": m.precision}
                           for role, m in models.items()}
    with manifest.timed("calibration"):
        predictors = calibration_stage.build_predictors(config, models, data, positions, device)
        manifest.notes["predictors"] = {role: p.describe() for role, p in predictors.items()}
    with manifest.timed("non_member_sets"):
        original = data.splits["target_test"].subset(positions["target_non_members"])
        rows = build_non_member_sets(
            config, data, original,
            attacker=_attacker_data(config, data, models, Path(config.results_dir),
                                    Path(output_dir or config.results_dir)))
        manifest.checksums.update({f"set:{name}": tensor_digest(t.images) for name, t in rows.sets.items()})
    return PreparedRun(config, device, data, positions, models, predictors, rows.sets, rows.in_label_space,
                       rows.skipped, original, manifest, rows.artifacts, rows.indices)


def score_target_sets(prepared: PreparedRun, scorer: Scorer, members: Scores,
                      original_scores: Scores) -> dict[str, Scores]:
    """Target scores of the members and each non-member set (Original reuses its split's rows)."""
    scores = {"Members": members}
    for name, tensors in prepared.sets.items():
        scores[name] = (original_scores if tensors is prepared.original
                        else scorer(tensors, prepared.in_label_space[name]))
    return scores


def run_experiment(config: ExperimentConfig) -> RunOutputs:
    """Run one configured experiment and write its files to ``config.results_dir`` as one set.

    Everything is checked first (:func:`pipeline.preflight.check_before_work`); files are written
    into a staging folder and committed together with the manifest listing their sha256
    (:class:`pipeline.outputs.OutputSet`), so an interrupted run leaves the previous set intact.
    """
    check_before_work(config)
    results_dir = Path(config.results_dir)
    with OutputSet(results_dir, config.run_stem()) as output_set:
        outputs = _run_into(config, output_set.directory)
        manifest = outputs.prepared.manifest
        manifest.outputs = {name: str(results_dir / path.name) if path.parent == output_set.directory
                            else str(path) for name, path in outputs.files.items()}
        manifest.outputs["manifest"] = str(results_dir / manifest_name(outputs.stem))
        committed = output_set.commit(manifest)
    outputs.files = {name: Path(manifest.outputs[name]) for name in outputs.files}
    outputs.files["manifest"] = committed[manifest_name(outputs.stem)]
    return outputs


def _run_into(config: ExperimentConfig, out_dir: Path) -> RunOutputs:
    """Every stage of a run, writing its files into ``out_dir`` (the staging folder)."""
    prepared = prepare_run(config, out_dir)
    manifest, results_dir = prepared.manifest, Path(config.results_dir)
    cache = ScoreCache(results_dir / "cache" if config.cache_scores else None)
    scorers = prepared.scorers(cache)

    with manifest.timed("scores"):
        split_scores = {role: _score_splits(scorers[role], prepared.data, prepared.positions, role)
                        for role in ROLES}
        target_scores = score_target_sets(prepared, scorers["target"], split_scores["target"]["members"],
                                          split_scores["target"]["non_members"])
        shadow_scores = {"Members": split_scores["shadow"]["members"],
                         "Original": split_scores["shadow"]["non_members"]}
    membership = check_loaded_models(prepared.models, split_scores)

    with manifest.timed("attacks_fit"):
        attacks = fit_attacks(score_attack_names(config.attacks), shadow_scores["Members"], shadow_scores["Original"],
                              params=config.attack_params, seed=derive_seed(config.seed, "attacks"))

    with manifest.timed("attacks_evaluate"):
        non_member_scores = {name: s for name, s in target_scores.items() if name != "Members"}
        evaluation = evaluate_sets(attacks, target_scores["Members"], non_member_scores)
    reference = add_reference_attacks(config, prepared, target_scores, evaluation, cache, manifest)
    results = evaluation.results

    stem = config.run_stem()
    order, skipped_rows = table_row_order(config, list(results), prepared.skipped)
    attacks_df = attack_table(results, skipped=skipped_rows, order=order)
    uncalibrated = calibration_stage.uncalibrated_metrics(config, prepared.models, prepared.data,
                                                          prepared.device)
    performance_df = performance_table(_performance_rows(split_scores, uncalibrated))
    files = {
        "attack_results": write_table(attacks_df, out_dir / attack_csv_name(stem)),
        "performance_results": write_table(performance_df, out_dir / performance_csv_name(stem)),
        "splits": out_dir / splits_name(stem),
    }
    manifest.splits = {"file": str(results_dir / files["splits"].name), "protocol": prepared.data.indices.protocol,
                       "sha256": write_split_file(files["splits"], split_arrays(
                           prepared.data.indices, prepared.data.pools, prepared.set_indices))}
    held_out = held_out_results(prepared, split_scores, target_scores, evaluation, attacks, reference,
                                out_dir, stem)
    if held_out is not None:
        files.update(held_out.files)
    if reference is not None:   # the null test and the reference models as targets
        files.update(write_reference_tables(reference, out_dir, stem))
    class_source = {name: "label" if s.in_label_space else "predicted"
                    for name, s in non_member_scores.items()}
    manifest.notes.update({"skipped_sets": prepared.skipped, "shokri_class_source": class_source,
                           "score_cache": {"hits": cache.hits, "misses": cache.misses,
                                           "repaired": cache.repaired},
                           "membership_check": {c.role: c.as_dict() for c in membership}})
    outputs = RunOutputs(stem, attacks_df, performance_df, results, target_scores, shadow_scores,
                         prepared.skipped, files, attacks, prepared=prepared, split_scores=split_scores,
                         membership=membership, class_source=class_source, attack_outputs=evaluation.outputs,
                         held_out=held_out, reference=reference)
    if config.figures:
        with manifest.timed("figures_and_report"):
            files.update(write_figures_and_report(outputs, prepared, out_dir, results_dir))
    return outputs


def table_row_order(config: ExperimentConfig, evaluated: list[str],
               skipped: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Row names in the requested order (``config.sets``), skipped rows in their place, and
    row name -> reason of the skipped ones. ``evaluated`` lists evaluated rows in requested order."""
    remaining = iter(evaluated)
    order, skipped_rows = [], {}
    for key in config.sets:
        if key in skipped:
            name = row_name(config.dataset, key)
            skipped_rows[name] = skipped[key]
            order.append(name)
        elif (name := next(remaining, None)) is not None:
            order.append(name)
    return order + list(remaining), skipped_rows


def _score_splits(scorer: Scorer, data: ExperimentData, positions: dict, role: str) -> dict[str, Scores]:
    """Scores of the attack rows and of the rest of each split: every sample exactly once."""
    out = {}
    for kind, split_name in (("members", "train"), ("non_members", "test")):
        tensors = data.splits[f"{role}_{split_name}"]
        attack_rows = positions[f"{role}_{kind}"]
        rest_rows = complement(attack_rows, len(tensors.labels))
        out[kind] = scorer(tensors.subset(attack_rows))
        parts = [(attack_rows, out[kind])]
        if len(rest_rows):
            parts.append((rest_rows, scorer(tensors.subset(rest_rows))))
        out[split_name] = merge_rows(len(tensors.labels), parts)
    return out


def _performance_rows(split_scores: dict, uncalibrated: dict | None) -> dict[str, dict[str, float]]:
    """Rows ``Train Acc. Target`` ... for the probabilities the attacks saw (and before calibration)."""
    columns = {"Value": {}}
    for role in ROLES:
        for split_name in ("train", "test"):
            scores = split_scores[role][split_name]
            columns["Value"].update(model_metric_rows(model_metrics(scores.probs, scores.labels),
                                                      role, split_name))
    if uncalibrated:
        columns["Uncalibrated"] = uncalibrated
    return columns


def _attacker_data(config: ExperimentConfig, data: ExperimentData, models: dict,
                   results_dir: Path, figure_dir: Path) -> AttackerData:
    """What attacker-side generators may use: the shadow split and model, never the target's."""
    shadow = data.splits["shadow_train"]
    return AttackerData(images=data.domain.denormalize(shadow.images), labels=shadow.labels,
                        shadow_model=models["shadow"].model, cache_dir=results_dir / "cache",
                        figure_dir=figure_dir, progress=config.progress)
