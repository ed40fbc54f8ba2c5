"""The one writer: every file of an evaluation, for every route.

``{stem}attack_results.csv`` (the paper's layout), ``performance_results.csv``,
``held_out_fpr_results.csv`` (with held-out rows, bootstrap intervals appended),
``intervals.csv``, ``sample_scores.csv``, ``slices.csv``, the reference attacks' ``reference_null_test_results.csv``
(with a shadow model) and ``reference_as_target_results.csv``, ROC and score-distribution figures,
the held-out FPR figure, the route's own figures and ``report.md``.
"""
from __future__ import annotations

from pathlib import Path

from engine.reference_checks import (flagged_attacks, report_sections as reference_report_sections,
                                     write_reference_tables)
from engine.report import ReportContext, attack_notes, label_source_note
from engine.sample_scores import sample_scores_name, write_sample_scores
from engine.tables import write_table
from utils.naming import attack_csv_name, held_out_csv_name, intervals_csv_name, manifest_name, performance_csv_name


def write_tables(result, folder: Path, stem: str) -> dict[str, Path]:
    """Every CSV of ``result`` into ``folder``; returns file key -> path."""
    folder = Path(folder)
    files = {"attack_results": write_table(result.attack_table, folder / attack_csv_name(stem)),
             "performance_results": write_table(result.performance_table, folder / performance_csv_name(stem))}
    if result.held_out is not None:
        files["held_out_fpr_results"] = write_table(result.held_out.with_intervals, folder / held_out_csv_name(stem))
    if result.reference is not None:
        files.update(write_reference_tables(result.reference, folder, stem))
    files["intervals"] = write_table(result.intervals.set_index("set"), folder / intervals_csv_name(stem))
    files["sample_scores"] = write_sample_scores(result.sample_scores, folder / sample_scores_name(stem))
    if result.thresholds is not None:
        files["attack_thresholds"] = write_table(result.thresholds.set_index("attack"), folder / f"{stem}attack_thresholds.csv")
    if result.epsilon_bounds is not None:
        files["epsilon_bounds"] = write_table(result.epsilon_bounds.set_index("set"), folder / f"{stem}epsilon_bounds.csv")
    if result.slices is not None:
        files["slices"] = write_table(result.slices.set_index("attack"), folder / f"{stem}slices.csv")
    return files


def write_figures_and_report(result, folder: Path, stem: str, files: dict[str, Path],
                             context: ReportContext) -> dict[str, Path]:
    """ROC curves, score distributions, the route's figures, the held-out FPR figure and
    ``{stem}report.md`` into ``folder``; returns name -> path of each."""
    from reporting import plot_max_score_distributions, plot_roc_curves, write_report
    from reporting.held_out_fpr import plot_held_out_fpr, report_section

    folder = Path(folder)
    written: dict[str, Path] = {}
    bundle, outputs = result.bundle, result.outputs
    attack_scores = {f"{attack} Attack": {name: (per_set["Members"].scores, per_set[name].scores)
                                          for name in bundle.sets if name in per_set}
                     for attack, per_set in outputs.items()}
    for path in plot_roc_curves(attack_scores, folder, stem):
        written[path.stem] = path
    written["max_scores"] = plot_max_score_distributions(
        bundle.members.max_probs, {name: s.max_probs for name, s in bundle.sets.items()},
        folder / f"{stem}max_score_distributions.png", title="Maximum prediction score")
    if context.route_figures is not None:
        written.update(context.route_figures(folder, {**files, **written}))
    sections = []
    if result.held_out is not None:
        held_out = result.held_out
        written["held_out_fpr"] = plot_held_out_fpr(held_out.table, folder / f"{stem}held_out_fpr.png")
        body = report_section(held_out.table, held_out.label_effect, held_out.label_effect_set,
                              context.population_note if result.reference is not None else None,
                              intervals=result.intervals, flagged=flagged_attacks(result.reference))
        csv = files.get("held_out_fpr_results")
        if csv is not None:
            body += f"\n\nFull table (1% and 0.1%): [{Path(csv).name}]({Path(csv).name})"
        sections.append(("Are the attacks fooled by OOD and fake data?", body))
    if result.epsilon_bounds is not None and len(result.epsilon_bounds):
        from reporting.epsilon import epsilon_section, plot_epsilon_bounds

        written["epsilon_bounds"] = plot_epsilon_bounds(result.epsilon_bounds, folder / f"{stem}epsilon_bounds.png",
                                                        bundle.dp_epsilon)
        sections.append(("Empirical privacy: epsilon lower bounds", epsilon_section(
            result.epsilon_bounds, files["epsilon_bounds"].name, bundle.dp_epsilon, result.dp_violations)))
    if "slices" in files:
        from reporting.slices import SECTION_TITLE, slices_section

        sections.append((SECTION_TITLE, slices_section(result.slices, files["slices"].name)))
    notes = list(context.notes)
    notes += [note for attack_notes_ in result.notes.get("attack_notes", {}).values() for note in attack_notes_]
    if (labels := label_source_note(result)) is not None:
        notes.insert(0, labels)
    notes += [f"{attack} not run: {reason}" for attack, reason in result.skipped_attacks.items()]
    if result.thresholds is not None:
        notes += [f"{row.attack} decides with a threshold from {row['threshold source']}: {row.note}"
                  for _, row in result.thresholds.iterrows() if row["threshold source"] != "shadow model"]
    notes.append("Per-sample scores and decisions: " + files["sample_scores"].name)
    headline = written.get("held_out_fpr") or written.get("false_positives")
    written["report"] = write_report(
        folder / f"{stem}report.md", title=context.title, config=context.config or result.config,
        performance=result.performance_table, attacks=result.attack_table, figures=list(written.values()),
        skipped_sets=context.skipped_sets, comparison=context.comparison, notes=notes,
        attack_csv=files["attack_results"], performance_csv=files["performance_results"],
        intervals_csv=files.get("intervals"), extra_sections=sections,
        summary=result.summary(context.opening) + list(context.closing), headline_figure=headline,
        intervals=result.intervals, what_happened=context.what_happened, attack_notes=attack_notes(result),
        attack_sections=reference_report_sections(result.reference, files))
    return written


def write_results(result, folder: Path, stem: str, context: ReportContext | None, figures: bool = True
                  ) -> dict[str, Path]:
    """:func:`write_tables`, then (with ``figures``) :func:`write_figures_and_report`."""
    files = write_tables(result, folder, stem)
    if figures:
        files.update(write_figures_and_report(result, folder, stem, files, context or ReportContext(
            title=f"Membership inference audit: {stem.rstrip('_')}")))
    return files


def write_result_set(result, folder, name: str = "audit", figures: bool = True,
                     context: ReportContext | None = None) -> dict[str, Path]:
    """Every file of ``result`` written into ``folder`` as one set with its manifest
    (``{name}_attack_results.csv`` ...): staged, then moved into place together."""
    from engine.manifest import Manifest
    from engine.outputs import OutputSet

    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"--name {name!r}: give a plain file-name prefix such as my_model")
    stem = f"{name}_"
    manifest = Manifest(dict(result.config))
    manifest.timings.update(result.timings)
    manifest.notes.update({"skipped_attacks": result.skipped_attacks, **result.notes})
    with OutputSet(Path(folder), stem) as output_set:
        files = write_results(result, output_set.directory, stem, context, figures)
        committed = output_set.commit(manifest)
    return {key: committed[path.name] for key, path in files.items()} | {"manifest": committed[manifest_name(stem)]}
