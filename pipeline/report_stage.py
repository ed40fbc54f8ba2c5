"""Figures and report of a run; they only read what earlier stages computed."""
from __future__ import annotations

import logging
from pathlib import Path


from reporting import (FalsePositiveCandidates, compare_with_paper, paper_table, plot_false_positive_grid,
                       plot_max_score_distributions, plot_roc_curves, plot_tradeoff, write_report)

from pipeline.reference_evaluation import report_sections as reference_report_sections

log = logging.getLogger(__name__)
FALSE_POSITIVE_ATTACK = "Threshold"  # the paper's headline figure uses the threshold attack


def write_figures_and_report(outputs, prepared, results_dir: Path,
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
            candidates, results_dir / f"{stem}false_positives.png")

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

    sections = _held_out_section(outputs, results_dir, files) + reference_report_sections(outputs.reference, files)
    paper = paper_table(stem)
    comparison = compare_with_paper(outputs.attack_table, paper) if paper is not None else None
    notes = [f"Shokri attack class source per set: {outputs.class_source}"]
    if comparison is None:
        notes.append("No published table matches this configuration; no paper comparison.")
    files["report"] = write_report(
        results_dir / f"{stem}report.md", title=f"Membership inference: {stem.rstrip('_')}",
        config=prepared.config.to_dict(), performance=outputs.performance_table,
        attacks=outputs.attack_table, figures=[p for n, p in files.items() if n != "report"],
        skipped_sets=outputs.skipped, comparison=comparison, notes=notes,
        attack_csv=outputs.files["attack_results"], performance_csv=outputs.files["performance_results"],
        extra_sections=sections)
    return files


def _held_out_section(outputs, results_dir: Path, files: dict) -> list[tuple[str, str]]:
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
                "models (online attacks estimate their IN statistics; see docs/attack_api.md). "
                "RMIA's score is a fraction of its population samples z, so it moves in steps of 1/|z| and "
                "ties at 1 for samples above every z.")
    body = report_section(held_out.table, held_out.label_effect, held_out.label_effect_set, note)
    csv = held_out.files.get("held_out_fpr_results")
    if csv is not None:
        body += f"\n\nFull table (1% and 0.1%): [{Path(csv).name}]({Path(csv).name})"
    return [("Are the attacks fooled by OOD and fake data?", body)]
