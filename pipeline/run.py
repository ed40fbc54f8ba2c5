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
from pipeline import calibration_stage
from pipeline.config import ExperimentConfig, validate_config
from pipeline.data_stage import ExperimentData, build_non_member_sets, load_experiment_data
from pipeline.domains import domain_for
from pipeline.evaluation_stage import (Scorer, complement, evaluate_sets, fit_attacks, merge_rows)
from pipeline.held_out_stage import add_reference_attacks, held_out_results, score_attack_names
from pipeline.manifest import Manifest, tensor_digest
from pipeline.model_stage import ROLES, load_or_train_models
from pipeline.report_stage import write_figures_and_report
from pipeline.results import (ATTACK_SUFFIX, PERFORMANCE_SUFFIX, attack_table, model_metric_rows,
                              performance_table, result_stem, write_table)
from pipeline.scores import ScoreCache, Scores
from pipeline.splits import attack_subset
from utils.devices import resolve_device
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
    context: dict = field(default_factory=dict)  # data, models, predictors for figures


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

    def scorers(self, cache: ScoreCache) -> dict[str, Scorer]:
        return {role: Scorer(self.predictors[role], self.models[role].fingerprint, self.device, cache)
                for role in ROLES}


def prepare_run(config: ExperimentConfig) -> PreparedRun:
    """Check config, seed, load data, load or train models, calibrate, build non-member sets."""
    validate_config(config)
    if config.reference_models and config.ray_address:
        from pipeline.ray_pool import check_address

        check_address(config.ray_address)  # fail before training anything
    manifest = Manifest(config.to_dict())
    seed_everything(config.seed)
    device = resolve_device(config.device)
    with manifest.timed("data"):
        domain = domain_for(config)
        data = load_experiment_data(config, domain)
        manifest.checksums.update({f"split:{k}": v for k, v in data.checksums().items()})
        positions = _attack_positions(config, data)
    with manifest.timed("models"):
        models = load_or_train_models(config, data, device)
        manifest.models = {role: {"checkpoint": str(m.checkpoint), "trained": m.trained,
                                  "sha256": m.fingerprint} for role, m in models.items()}
    with manifest.timed("calibration"):
        predictors = calibration_stage.build_predictors(config, models, data, positions, device)
        manifest.notes["predictors"] = {role: p.describe() for role, p in predictors.items()}
    with manifest.timed("non_member_sets"):
        original = data.splits["target_test"].subset(positions["target_non_members"])
        rows = build_non_member_sets(
            config, data, original,
            extra_options=_attacker_options(config, data, models, Path(config.results_dir)))
        manifest.checksums.update({f"set:{name}": tensor_digest(t.images) for name, t in rows.sets.items()})
    return PreparedRun(config, device, data, positions, models, predictors, rows.sets, rows.in_label_space,
                       rows.skipped, original, manifest, rows.artifacts)


def score_target_sets(prepared: PreparedRun, scorer: Scorer, members: Scores,
                      original_scores: Scores) -> dict[str, Scores]:
    """Target scores of the members and each non-member set (Original reuses its split's rows)."""
    scores = {"Members": members}
    for name, tensors in prepared.sets.items():
        scores[name] = (original_scores if tensors is prepared.original
                        else scorer(tensors, prepared.in_label_space[name]))
    return scores


def run_experiment(config: ExperimentConfig) -> RunOutputs:
    """Run one configured experiment and write its CSVs and manifest to ``config.results_dir``."""
    prepared = prepare_run(config)
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

    with manifest.timed("attacks_fit"):
        attacks = fit_attacks(score_attack_names(config.attacks), shadow_scores["Members"], shadow_scores["Original"],
                              salem_k=config.salem_k, seed=derive_seed(config.seed, "attacks"))

    with manifest.timed("attacks_evaluate"):
        non_member_scores = {name: s for name, s in target_scores.items() if name != "Members"}
        evaluation = evaluate_sets(attacks, target_scores["Members"], non_member_scores)
    reference = add_reference_attacks(config, prepared, target_scores, evaluation, cache, manifest)
    results = evaluation.results

    stem = result_stem(config.model_arch, config.dataset, calibration_stage.run_modifier(config))
    attacks_df = attack_table(results, skipped=list(prepared.skipped))
    uncalibrated = calibration_stage.uncalibrated_metrics(config, prepared.models, prepared.data,
                                                          prepared.device)
    performance_df = performance_table(_performance_rows(split_scores, uncalibrated))
    files = {
        "attack_results": write_table(attacks_df, results_dir / f"{stem}{ATTACK_SUFFIX}"),
        "performance_results": write_table(performance_df, results_dir / f"{stem}{PERFORMANCE_SUFFIX}"),
    }
    held_out = held_out_results(prepared, split_scores, target_scores, evaluation, attacks, reference,
                                results_dir, stem)
    if held_out is not None:
        files.update(held_out.files)
    class_source = {name: "label" if s.in_label_space else "predicted"
                    for name, s in non_member_scores.items()}
    manifest.notes.update({"skipped_sets": prepared.skipped, "shokri_class_source": class_source,
                           "score_cache": {"hits": cache.hits, "misses": cache.misses}})
    outputs = RunOutputs(stem, attacks_df, performance_df, results, target_scores, shadow_scores,
                         prepared.skipped, files, attacks,
                         context={"prepared": prepared, "split_scores": split_scores,
                                  "class_source": class_source, "attack_outputs": evaluation.outputs,
                                  "held_out": held_out, "reference": reference})
    if config.figures:
        with manifest.timed("figures_and_report"):
            files.update(write_figures_and_report(outputs, prepared, results_dir))
    manifest.outputs = {name: str(path) for name, path in files.items()}
    files["manifest"] = manifest.write(results_dir / f"{stem}manifest.json")
    return outputs


def _attack_positions(config: ExperimentConfig, data: ExperimentData) -> dict[str, np.ndarray]:
    """Rows of each split used as attack members / Original non-members."""
    positions = {}
    for role in ROLES:
        for kind, split in (("members", "train"), ("non_members", "test")):
            tensors = data.splits[f"{role}_{split}"]
            positions[f"{role}_{kind}"] = attack_subset(
                config.attack_set_size, len(tensors.labels), derive_seed(config.seed, role, kind),
                f"the {role} {split} split")
    return positions


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


def _attacker_options(config: ExperimentConfig, data: ExperimentData, models: dict,
                      results_dir: Path) -> dict:
    """What attacker-side generators may use: the shadow split and model, never the target's."""
    shadow = data.splits["shadow_train"]
    return {"attacker_images": data.domain.denormalize(shadow.images), "attacker_labels": shadow.labels,
            "reference_model": models["shadow"].model, "cache_dir": str(results_dir / "cache"),
            "figure_dir": str(results_dir), "progress": config.progress}
