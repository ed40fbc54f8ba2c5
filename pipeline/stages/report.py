"""Figures and report of a run; they only read what earlier stages computed."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from attacks import ATTACKS
from reporting import (FalsePositiveCandidates, compare_with_paper, paper_table, plot_false_positive_grid,
                       plot_max_score_distributions, plot_roc_curves, plot_tradeoff, write_report)
from reporting.summary import chance_sentence, headline_finding, strongest_at_low_fpr
from pipeline.stages.reference_evaluation import (flagged_attacks, null_test_sentence,
                                                  report_sections as reference_report_sections)
from utils.naming import attack_names_of

if TYPE_CHECKING:
    from pipeline.run import PreparedRun, RunOutputs

log = logging.getLogger(__name__)
# the paper's headline figure shows its first attack's decisions (the threshold attack)
FALSE_POSITIVE_ATTACK = next(spec.display for spec in ATTACKS.values() if spec.paper)


def write_figures_and_report(outputs: RunOutputs, prepared: PreparedRun, results_dir: Path,
                             committed_dir: Path | None = None) -> dict[str, Path]:
    """ROC curves, score distributions, false-positive grid, reliability diagrams, trade-off plot,
    and ``{stem}report.md``, all written into ``results_dir``; returns name -> path of every file.

    ``committed_dir``: the folder whose earlier runs the trade-off plot also shows (this run's
    tables in ``results_dir`` replace its own earlier ones).
    """
    from calibration.reliability import plot_reliability_diagram

    stem, scores = outputs.stem, outputs.target_scores
    members = scores["Members"]
    non_members = {name: s for name, s in scores.items() if name != "Members"}
    files: dict[str, Path] = {}

    attack_outputs = outputs.attack_outputs  # attack -> "Members" / set -> AttackOutputs
    attack_scores = {f"{attack} Attack": {name: (per_set["Members"].scores, per_set[name].scores)
                                          for name in non_members}
                     for attack, per_set in attack_outputs.items()}
    for path in plot_roc_curves(attack_scores, results_dir, stem):
        files[path.stem] = path
    files["max_scores"] = plot_max_score_distributions(
        members.max_probs, {name: s.max_probs for name, s in non_members.items()},
        results_dir / f"{stem}max_score_distributions.png", title="Maximum prediction score")

    if FALSE_POSITIVE_ATTACK in attack_outputs:
        domain, decided = prepared.data.domain, attack_outputs[FALSE_POSITIVE_ATTACK]
        candidates = {name: FalsePositiveCandidates(
            images=domain.denormalize(prepared.sets[name].images).clamp(0, 1),
            max_probs=s.max_probs, predicted_member=decided[name].decisions,
            predicted_class=s.probs.argmax(1), class_names=domain.class_names)
            for name, s in non_members.items()}
        files["false_positives"] = plot_false_positive_grid(
            candidates, results_dir / f"{stem}false_positives.png", attack=FALSE_POSITIVE_ATTACK)

    for role in ("target", "shadow"):
        test = outputs.split_scores[role]["test"]
        files[f"reliability_{role}"] = plot_reliability_diagram(
            test.probs, test.labels, results_dir / f"{stem}reliability_{role}.png",
            title=f"{role} model, test split")
    sources = [committed_dir, results_dir] if committed_dir is not None else results_dir
    tradeoff = plot_tradeoff(sources, results_dir / "tradeoff.png")
    if tradeoff is not None:
        files["tradeoff"] = tradeoff
    for name, path in prepared.extra_figures.items():
        files[name] = Path(path)

    sections = _held_out_section(outputs, results_dir, files)
    paper = paper_table(stem)
    comparison = compare_with_paper(outputs.attack_table, paper) if paper is not None else None
    notes = [f"Shokri attack class source per set: {outputs.class_source}"]
    if comparison is None:
        notes.append("No published table matches this configuration; no paper comparison.")
    headline = files.get("held_out_fpr") or files.get("false_positives")
    files["report"] = write_report(
        results_dir / f"{stem}report.md", title=f"Membership inference: {stem.rstrip('_')}",
        config=prepared.config.to_dict(), performance=outputs.performance_table,
        attacks=outputs.attack_table, figures=[p for n, p in files.items() if n != "report"],
        skipped_sets=outputs.skipped, comparison=comparison, notes=notes,
        attack_csv=outputs.files["attack_results"], performance_csv=outputs.files["performance_results"],
        intervals_csv=outputs.files.get("intervals"), extra_sections=sections,
        summary=report_summary(outputs, prepared, comparison), headline_figure=headline,
        intervals=outputs.intervals, what_happened=what_happened(outputs, prepared),
        attack_notes=attack_notes(outputs), attack_sections=reference_report_sections(outputs.reference, files))
    return files


def report_summary(outputs, prepared, comparison) -> list[str]:
    """The report's opening sentences: what was audited, what was found, how it compares to the paper."""
    config, attacks, intervals = prepared.config, outputs.attack_table, outputs.intervals
    members = len(outputs.target_scores["Members"])
    sets = [s for s in attacks.index if s not in outputs.skipped]
    names = attack_names_of(attacks.columns)
    sentences = [f"Audited: a {config.model_arch} target model trained on {config.train_set_size} {config.dataset} "
                 f"images, attacked by {len(names)} attacks ({', '.join(names)}) fitted on a shadow model; each "
                 f"attack sees {members} training members against {len(sets)} non-member sets "
                 f"({', '.join(sets)})."]
    flagged = flagged_attacks(outputs.reference)    # null test failed: in no headline
    for text in (headline_finding(attacks, intervals), strongest_at_low_fpr(attacks, intervals, flagged=flagged),
                 chance_sentence(attacks, intervals)):
        if text:
            sentences.append(text)
    if outputs.held_out is not None:
        from reporting.held_out_fpr import fooled_summary

        sentences.append(fooled_summary(outputs.held_out.table, flagged))
    if (null_failed := null_test_sentence(outputs.reference)) is not None:
        sentences.append(null_failed)
    if comparison is None:
        sentences.append("The paper published no table for this configuration, so there is no cell-by-cell "
                         "comparison (see Comparison with the paper).")
    else:
        both = comparison[comparison["status"] == "both"] if "status" in comparison.columns else comparison.iloc[:0]
        if len(both):
            sentences.append(f"Against the paper's published table: mean absolute difference "
                             f"{both['difference'].abs().mean():.3f} over {len(both)} shared cells (details below).")
    return sentences


def what_happened(outputs, prepared) -> list[tuple[str, str]]:
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
    if outputs.reference is not None:
        rows.append(("reference models", f"{prepared.config.reference_models} (LiRA / RMIA)"))
    return rows


def attack_notes(outputs) -> dict[str, str]:
    """Sentences for numbers that need one: an attack below chance that is chance level."""
    from reporting.summary import cell

    notes = {}
    shokri = cell(outputs.attack_table, outputs.intervals, "Original", "Shokri", "AUROC")
    if shokri is not None and shokri.estimate < 0.5 and shokri.within_two_se_of(0.5):
        shadow = sum(len(s) for s in outputs.shadow_scores.values())
        classes = outputs.shadow_scores["Members"].probs.shape[1]
        notes["Shokri"] = (f"Shokri's AUROC {shokri.estimate:.3f} on Original is below 0.5 but within two standard "
                           f"errors of it (SE {shokri.se:.3f}): chance level, not a reversed signal. It trains one "
                           f"attack model per class on the shadow model's score vectors, here about "
                           f"{shadow // classes} per class (members and non-members together), and the shadow "
                           f"model's own member/non-member gap is small, so there is little to learn.")
    return notes


def _held_out_section(outputs: RunOutputs, results_dir: Path, files: dict[str, Path]) -> list[tuple[str, str]]:
    """The OOD/fake FPR figure (added to ``files``) and its report section, when the run has one."""
    from reporting.held_out_fpr import plot_held_out_fpr, report_section

    held_out = outputs.held_out
    if held_out is None:
        return []
    files["held_out_fpr"] = plot_held_out_fpr(held_out.table, results_dir / f"{outputs.stem}held_out_fpr.png")
    note = None
    pool = outputs.reference is not None
    if pool:
        note = ("LiRA and RMIA score the target's logits before any calibration (as their reference models "
                "are scored). The reference population holds every in-distribution row (members, Original "
                "and held-out non-members), each IN for the same number of reference models; the OOD/fake "
                "sets are in no reference model's training set and are scored from the same number of OUT "
                "models (online attacks borrow the IN statistics of the inside row their OUT models see most "
                "alike; see docs/attack_api.md). "
                "RMIA's score is a fraction of its population samples z, so it moves in steps of 1/|z| and "
                "ties at 1 for samples above every z.")
    body = report_section(held_out.table, held_out.label_effect, held_out.label_effect_set, note,
                          intervals=outputs.intervals, flagged=flagged_attacks(outputs.reference))
    csv = held_out.files.get("held_out_fpr_results")
    if csv is not None:
        body += f"\n\nFull table (1% and 0.1%): [{Path(csv).name}]({Path(csv).name})"
    return [("Are the attacks fooled by OOD and fake data?", body)]
