"""An audit's files, written by the preset runs' writers and committed as one set with a manifest."""
from __future__ import annotations

from pathlib import Path

from engine.manifest import Manifest
from engine.outputs import OutputSet
from engine.tables import write_table
from engine.sample_scores import sample_scores_name, write_sample_scores
from utils.naming import attack_csv_name, held_out_csv_name, intervals_csv_name, manifest_name, performance_csv_name


def write_audit(result, folder: str | Path, name: str = "audit", figures: bool = True) -> dict[str, Path]:
    """``{name}_attack_results.csv``, ``..._performance_results.csv``, ``..._held_out_fpr_results.csv``
    (with held-out rows), ``..._sample_scores.csv``, ``..._intervals.csv``, figures, ``..._report.md`` and
    ``..._manifest.json`` in ``folder``, staged and moved into place together."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"--name {name!r}: give a plain file-name prefix such as my_model")
    stem = f"{name}_"
    folder = Path(folder)
    manifest = Manifest(dict(result.config))
    manifest.notes.update({"skipped_attacks": result.skipped_attacks, **result.notes})
    with OutputSet(folder, stem) as output_set:
        out = output_set.directory
        files = {"attack_results": write_table(result.attack_table, out / attack_csv_name(stem)),
                 "performance_results": write_table(result.performance_table, out / performance_csv_name(stem)),
                 "sample_scores": write_sample_scores(result.sample_scores, out / sample_scores_name(stem))}
        if result.intervals is not None:
            files["intervals"] = write_table(result.intervals.set_index("set"), out / intervals_csv_name(stem))
        if result.held_out_table is not None:
            files["held_out_fpr_results"] = write_table(result.held_out_table, out / held_out_csv_name(stem))
        if figures:
            files.update(_figures_and_report(result, out, stem, files))
        committed = output_set.commit(manifest)
    return {key: committed[path.name] for key, path in files.items()} | {"manifest": committed[manifest_name(stem)]}


def _figures_and_report(result, out: Path, stem: str, files: dict) -> dict[str, Path]:
    from reporting import plot_max_score_distributions, plot_roc_curves, write_report
    from reporting.held_out_fpr import plot_held_out_fpr, report_section

    written: dict[str, Path] = {}
    non_members = [name for name in result.attack_table.index]
    attack_scores = {f"{attack} Attack": {name: (per_set["Members"].scores, per_set[name].scores)
                                          for name in non_members if name in per_set}
                     for attack, per_set in result.outputs.items()}
    for path in plot_roc_curves(attack_scores, out, stem):
        written[path.stem] = path
    sets = result.inputs.target_sets()
    written["max_scores"] = plot_max_score_distributions(
        result.inputs.members.scores.max_probs, {name: block.scores.max_probs for name, block in sets.items()},
        out / f"{stem}max_score_distributions.png", title="Maximum prediction score")
    sections = []
    if result.held_out_table is not None:
        written["held_out_fpr"] = plot_held_out_fpr(result.held_out_table, out / f"{stem}held_out_fpr.png")
        sections.append(("Are the attacks fooled by OOD and fake data?",
                         report_section(result.held_out_table, None, None, None, intervals=result.intervals)))
    notes = [f"{attack} not run: {reason}" for attack, reason in result.skipped_attacks.items()]
    notes.append("Per-sample scores and decisions: " + files["sample_scores"].name)
    written["report"] = write_report(
        out / f"{stem}report.md", title=f"Membership inference audit: {stem.rstrip('_')}",
        config=result.config, performance=result.performance_table, attacks=result.attack_table,
        figures=list(written.values()), skipped_sets={}, comparison=None, notes=notes,
        attack_csv=files["attack_results"], performance_csv=files["performance_results"], extra_sections=sections,
        summary=result.summary(), headline_figure=written.get("held_out_fpr"), intervals=result.intervals,
        intervals_csv=files.get("intervals"))
    return written
