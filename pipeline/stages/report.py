"""What a preset run adds to the engine's report: its opening sentence, the comparison with the
paper's published table, what the run did, and its own figures (false positives, reliability
diagrams, the calibration trade-off, generated samples)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import pandas as pd

from attacks import ATTACKS
from engine.report import ReportContext, display_names, name_list
from engine.scores import Scores
from reporting import (FalsePositiveCandidates, compare_with_paper, paper_table, plot_false_positive_grid,
                       plot_tradeoff)
from utils.naming import attack_names_of

if TYPE_CHECKING:
    from engine.evaluate import AuditResult
    from pipeline.stages.prepared import PreparedRun

log = logging.getLogger(__name__)
# the paper's headline figure shows its first attack's decisions (the threshold attack)
FALSE_POSITIVE_ATTACK = next(spec.display for spec in ATTACKS.values() if spec.paper)


def report_context(prepared: PreparedRun, result: AuditResult, stem: str,
                   split_scores: Mapping[str, Mapping[str, Scores]], committed_dir: Path) -> ReportContext:
    """The preset's part of the report (``committed_dir``: the folder whose earlier runs the
    trade-off plot also shows)."""
    config = prepared.config
    paper = paper_table(stem)
    comparison = compare_with_paper(result.attack_table, paper) if paper is not None else None
    notes = [] if comparison is not None else ["No published table matches this configuration; no paper comparison."]

    def route_figures(folder: Path, files: dict) -> dict[str, Path]:
        return _preset_figures(prepared, result, stem, split_scores, folder, committed_dir)

    return ReportContext(
        title=f"Membership inference: {stem.rstrip('_')}", opening=_opening(prepared, result),
        closing=_comparison_sentences(comparison), config=config.to_dict(), notes=notes,
        what_happened=what_happened(prepared, result), comparison=comparison, skipped_sets=prepared.skipped,
        population_note=_population_note(result), route_figures=route_figures)


def _opening(prepared: PreparedRun, result: AuditResult) -> str:
    config, attacks = prepared.config, result.attack_table
    sets = [s for s in attacks.index if s not in prepared.skipped]
    names = attack_names_of(attacks.columns)
    return (f"Audited: a {config.model_arch} target model trained on {config.train_set_size} {config.dataset} "
            f"images, attacked by {len(names)} attacks ({', '.join(names)}) fitted on a shadow model; each "
            f"attack sees {len(result.bundle.members)} training members against {len(sets)} non-member sets "
            f"({', '.join(sets)}).")


def _comparison_sentences(comparison: pd.DataFrame | None) -> list[str]:
    if comparison is None:
        return ["The paper published no table for this configuration, so there is no cell-by-cell "
                "comparison (see Comparison with the paper)."]
    both = comparison[comparison["status"] == "both"] if "status" in comparison.columns else comparison.iloc[:0]
    if not len(both):
        return []
    return [f"Against the paper's published table: mean absolute difference "
            f"{both['difference'].abs().mean():.3f} over {len(both)} shared cells (details below)."]


def _population_note(result: AuditResult) -> str:
    """How the reference attacks scored the rows, naming them from their declarations."""
    reference = name_list(display_names([a.name for a in result.reference.attacks])) if result.reference else ""
    population = display_names([a.name for a in result.reference.attacks], needs_population=True) \
        if result.reference else []
    note = (f"{reference} score the target's logits before any calibration (as their reference models "
            "are scored). The reference population holds every in-distribution row (members, Original "
            "and held-out non-members), each IN for the same number of reference models; the OOD/fake "
            "sets are in no reference model's training set and are scored from the same number of OUT "
            "models (online attacks borrow the IN statistics of the inside row their OUT models see most "
            "alike; see docs/attack_api.md).")
    if population:
        note += (f" {name_list(population, ' and ')}'s score is a fraction of its population samples z, so it "
                 "moves in steps of 1/|z| and ties at 1 for samples above every z.")
    return note


def what_happened(prepared: PreparedRun, result: AuditResult) -> list[tuple[str, str]]:
    """Rows of what the run did: each model trained or loaded (and which file), the learning rate used."""
    from pipeline.stages.models import train_config

    rows = []
    for role, model in prepared.models.items():
        how = "trained in this run, saved to" if model.trained else "loaded from"
        rows.append((f"{role} model", f"{how} {model.checkpoint} ({model.precision})"))
    lr = train_config(prepared.config, "target").lr
    source = "--lr" if prepared.config.lr is not None else f"the default of {prepared.config.model_arch}"
    rows.append(("learning rate (Adam)", f"{lr:g} ({source})"))
    rows.append(("calibration", str(prepared.config.calibration.method)))
    if result.reference is not None:
        names = name_list(display_names([a.name for a in result.reference.attacks]))
        rows.append(("reference models", f"{prepared.config.reference_models} ({names})"))
    return rows


def _preset_figures(prepared: PreparedRun, result: AuditResult, stem: str,
                    split_scores: Mapping[str, Mapping[str, Scores]], folder: Path,
                    committed_dir: Path) -> dict[str, Path]:
    """False-positive grid, reliability diagrams, trade-off plot and the preparation's figures."""
    from calibration.reliability import plot_reliability_diagram

    files: dict[str, Path] = {}
    if FALSE_POSITIVE_ATTACK in result.outputs:
        domain, decided = prepared.data.domain, result.outputs[FALSE_POSITIVE_ATTACK]
        candidates = {name: FalsePositiveCandidates(
            images=domain.denormalize(prepared.sets[name].images).clamp(0, 1),
            max_probs=s.max_probs, predicted_member=decided[name].decisions,
            predicted_class=s.probs.argmax(1), class_names=domain.class_names)
            for name, s in result.bundle.sets.items()}
        files["false_positives"] = plot_false_positive_grid(
            candidates, folder / f"{stem}false_positives.png", attack=FALSE_POSITIVE_ATTACK)
    for role in ("target", "shadow"):
        test = split_scores[role]["test"]
        files[f"reliability_{role}"] = plot_reliability_diagram(
            test.probs, test.labels, folder / f"{stem}reliability_{role}.png", title=f"{role} model, test split")
    tradeoff = plot_tradeoff([committed_dir, folder], folder / "tradeoff.png")
    if tradeoff is not None:
        files["tradeoff"] = tradeoff
    for name, path in prepared.extra_figures.items():
        files[name] = Path(path)
    return files
