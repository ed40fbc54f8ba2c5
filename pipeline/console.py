"""Console output of a run: numbered stage lines while it runs, a short summary at the end.

``StageLines`` is the run's stage hook (:func:`engine.manifest.stage_hook`): each
timed stage prints ``[k/n] title ...`` as it starts and ``[k/n] title ... 3.1 s`` as it ends.
``print_run`` prints the summary of :func:`summary_lines` (at most ~10 lines); ``--verbose`` adds the
full tables the CSVs hold.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from attacks import ATTACKS
from configuration.config import ExperimentConfig
from engine.fitting import reference_attack_names
from engine.report import display_names, finding_sentences, name_list
from engine.tables import format_console

if TYPE_CHECKING:
    from pipeline.run import PresetRun

STAGE_TITLES = {
    "data": "load data and splits",
    "models": "target and shadow models (train or load)",
    "calibration": "calibration",
    "non_member_sets": "non-member sets",
    "scores": "score every set once",
    "attacks_fit": "fit attacks on the shadow model's scores",
    "attacks_evaluate": "apply attacks to the target's scores",
    "reference_pool": "reference pool: {k} models",
    "reference_scores": "every model's logits on the reference rows",
    "reference_attacks": "fit {reference} on the shadow model, apply them to the target",
    "reference_evaluation": "null test and reference models as targets",
    "intervals": "bootstrap 95% intervals and slices",
    "epsilon_bounds": "epsilon lower bounds",
    "figures_and_report": "figures and report",
}


def planned_stages(config: ExperimentConfig) -> list[str]:
    """The timed stages a run of ``config`` goes through, in order."""
    stages = ["data", "models", "calibration", "non_member_sets", "scores"]
    known = [name for name in config.attacks if name in ATTACKS]  # unknown names fail later, in validation
    reference = bool(config.reference_models and reference_attack_names(known))
    if reference:
        stages += ["reference_pool", "reference_scores"]
    stages += ["attacks_fit", "attacks_evaluate"]
    if reference:
        stages += ["reference_attacks", "reference_evaluation"]
    stages += ["intervals", "epsilon_bounds"]
    if config.figures:
        stages.append("figures_and_report")
    return stages


class StageLines:
    """Prints one numbered line as each stage starts and one with its time as it ends."""

    def __init__(self, config: ExperimentConfig, stream: TextIO | None = None) -> None:
        self.stages = planned_stages(config)
        self.k = config.reference_models
        self.reference = name_list(display_names(config.attacks, needs_reference_models=True))
        self.stream = stream
        self.numbers: dict[str, int] = {}

    def title(self, stage: str) -> str:
        return STAGE_TITLES.get(stage, stage.replace("_", " ")).format(k=self.k, reference=self.reference)

    def __call__(self, stage: str, seconds: float | None) -> None:
        if stage not in self.numbers:
            self.numbers[stage] = (self.stages.index(stage) + 1 if stage in self.stages
                                   else len(self.stages) + 1 + len(set(self.numbers) - set(self.stages)))
        total = max(len(self.stages), *self.numbers.values())
        head = f"[{self.numbers[stage]}/{total}] {self.title(stage)} ..."
        print(head if seconds is None else f"{head} {seconds:.1f} s", file=self.stream or sys.stdout, flush=True)


def summary_lines(outputs: PresetRun, total_seconds: float | None = None) -> list[str]:
    """At most ~10 lines: the headline finding, the strongest attack at 1% FPR, chance-level attacks,
    the models, total time and where the report is."""
    lines = [f"== {outputs.stem.rstrip('_')}: done" + (f" in {total_seconds:.1f} s ==" if total_seconds else " ==")]
    lines += finding_sentences(outputs.result)
    lines.append(_models_line(outputs))
    doubtful = [check.role for check in outputs.membership if not check.clearly_better]
    if doubtful:
        lines.append(f"Members not clearly better than non-members for the {' and '.join(doubtful)} model "
                     "(see the warning above).")
    if outputs.skipped:
        lines.append(f"Skipped sets: {', '.join(outputs.skipped)} (reasons in the report).")
    lines += [f"DP check failed: {violation}" for violation in outputs.result.dp_violations]
    for attack, reason in outputs.result.failed_attacks.items():
        lines.append(f"Skipped attack {attack}: {reason}")
    if "report" in outputs.files:
        lines.append(f"Report: {outputs.files['report']}")
    if "manifest" in outputs.files:
        lines.append(f"Every file, with checksums: {outputs.files['manifest']}")
    return lines


def _models_line(outputs: PresetRun) -> str:
    table = outputs.performance_table["Value"]
    parts = []
    for role in ("Target", "Shadow"):
        rows = (f"Train Acc. {role}", f"Test Acc. {role}")
        if all(r in table.index for r in rows):
            parts.append(f"{role.lower()} train/test accuracy {table[rows[0]]:.3f}/{table[rows[1]]:.3f}")
    prepared = outputs.prepared
    if prepared is not None:
        done = {role: ("trained now" if m.trained else "loaded") for role, m in prepared.models.items()}
        parts.append(", ".join(f"{role} {how}" for role, how in done.items()))
    return "Models: " + "; ".join(parts) + "."


def print_run(outputs: PresetRun, total_seconds: float | None = None, verbose: bool = False) -> None:
    """The summary; with ``verbose`` first the full performance and attack tables and every file."""
    if verbose:
        for check in outputs.membership:
            print(check.line() + ("" if check.clearly_better else "  <- members not clearly better: see warning"))
        print(outputs.performance_table.to_string(float_format=lambda v: f"{v:.4f}"))
        print()
        print(format_console(outputs.attack_table))
        for name, reason in outputs.skipped.items():
            print(f"skipped {name}: {reason}")
        print()
        for name, path in outputs.files.items():
            print(f"{name}: {path}")
        print()
    print("\n".join(summary_lines(outputs, total_seconds)))
