"""Checks of the reference attacks' measurement, on the arrays the run already has.

- **Null test**: the shadow model as the target. It trained on none of the audited rows (the
  target's members, Original and held-out non-members, the OOD/fake sets), so every reference
  attack should give AUROC ~0.5 on every set; an Original AUROC outside ``0.5 +- NULL_TOLERANCE``
  (about two standard errors at 200 vs 200) is flagged as a measurement problem.
- **Reference models as targets** (the LiRA and RMIA papers' evaluation): each reference model in
  turn is the target, the other K - 1 are its reference models, its own membership over the
  population rows (not the z) is the truth; mean and sd of AUROC and TPR at 0.1% / 1% FPR.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from attacks.evaluation import tpr_at_fpr
from attacks.roc import roc_curve_points
from engine.tables import write_table

NULL_TOLERANCE = 0.06
NULL_SET = "Original"


def _auroc_and_tpr(is_member: np.ndarray, scores: np.ndarray, levels=(0.01,)) -> tuple[float, ...]:
    roc = roc_curve_points(is_member, scores)
    return (roc.auroc, *(tpr_at_fpr(roc.fpr, roc.tpr, level) for level in levels))


def null_test_table(real: dict, null: dict, set_names: list[str]) -> pd.DataFrame:
    """Rows: sets; per attack its AUROC and TPR@1%FPR with the real target and with the null one.

    Parameters
    ----------
    real, null : attack name -> set name -> scores (N,), each including ``"Members"``
    """
    rows = {}
    for attack in real:
        for set_name in set_names:
            row = rows.setdefault(set_name, {})
            for label, scores in (("", real[attack]), (" Null", null[attack])):
                members, others = scores["Members"], scores[set_name]
                is_member = np.r_[np.ones(len(members), bool), np.zeros(len(others), bool)]
                auroc, tpr = _auroc_and_tpr(is_member, np.r_[members, others])
                row[f"{attack}{label} AUROC"] = auroc
                row[f"{attack}{label} TPR@1%FPR"] = tpr
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "set"
    return table


def null_test_problems(table: pd.DataFrame) -> list[str]:
    """Attacks whose null AUROC on Original lies outside 0.5 +- NULL_TOLERANCE, as sentences."""
    if NULL_SET not in table.index:
        return []
    problems = []
    for column in table.columns:
        if column.endswith(" Null AUROC"):
            value = float(table.loc[NULL_SET, column])
            if abs(value - 0.5) > NULL_TOLERANCE:
                problems.append(f"**{column[:-len(' Null AUROC')]}**: null AUROC {value:.3f} on {NULL_SET} "
                                f"(outside 0.5 +- {NULL_TOLERANCE}): a measurement problem, not a leak of the target")
    return problems


def null_test_sentence(reference) -> str | None:
    """The report summary's sentence when the null test of ``reference`` (an engine.reference.ReferenceResult or
    None) flags an attack; None when it passes or there are no reference attacks."""
    problems = (null_test_problems(reference.null_test)
                if reference is not None and reference.null_test is not None else [])
    if not problems:
        return None
    return ("The reference attacks' null test failed (the shadow model scored as the target should give AUROC "
            "~0.5): " + "; ".join(problems) + " (see Null test of the reference attacks).")


def reference_as_target_table(attacks: list, signals, rows: np.ndarray, membership: np.ndarray) -> pd.DataFrame:
    """Each reference model in turn as the target (its membership ``membership[k, rows]``).

    Parameters
    ----------
    attacks : fitted ReferenceAttack objects (their options, e.g. a temperature chosen on the shadow)
    signals : ReferenceSignals of all scored rows with the K reference models
    rows : positions (in ``signals``) of the population rows evaluated
    membership : bool (K, len(signals)), the reference models' membership of every scored row
    """
    subset = signals.rows(rows)
    out = {}
    for attack in attacks:
        values, reason = [], ""
        attack.score(subset)     # computes the per-model signals once; each leave-one-out view selects from them
        for k in range(membership.shape[0]):
            try:
                scores = attack.score(subset.without_model(k))
            except ValueError as error:   # e.g. too few IN models per row once model k is left out
                reason = str(error)
                break
            values.append(_auroc_and_tpr(membership[k, rows], scores, (0.001, 0.01)))
        values = np.asarray(values) if values and not reason else np.full((1, 3), np.nan)
        out[attack.name] = {"Targets": 0 if reason else len(values),
                            "AUROC mean": values[:, 0].mean(), "AUROC sd": _sd(values[:, 0]),
                            "TPR@0.1%FPR mean": values[:, 1].mean(), "TPR@0.1%FPR sd": _sd(values[:, 1]),
                            "TPR@1%FPR mean": values[:, 2].mean(), "TPR@1%FPR sd": _sd(values[:, 2]),
                            "Skipped": reason}
    table = pd.DataFrame.from_dict(out, orient="index")
    table.index.name = "attack"
    return table


def _sd(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def write_reference_tables(reference, results_dir: Path, stem: str) -> dict[str, Path]:
    """``{stem}reference_null_test_results.csv`` (with a shadow model) and
    ``{stem}reference_as_target_results.csv``."""
    results_dir = Path(results_dir)
    tables = {"reference_null_test_results": reference.null_test, "reference_as_target_results": reference.as_target}
    return {key: write_table(table, results_dir / f"{stem}{key}.csv") for key, table in tables.items()
            if table is not None}


def report_sections(reference, files: dict) -> list[tuple[str, str]]:
    """Report sections: the null test (flagging problems) and the reference-as-target means."""
    from reporting.report import markdown_table

    if reference is None or reference.as_target is None:
        return []
    null = reference.null_test
    problems = null_test_problems(null) if null is not None else []
    verdict = ("\n".join(f"- {p}" for p in problems) if problems else
               f"Every reference attack's null AUROC on {NULL_SET} lies within 0.5 +- {NULL_TOLERANCE}.")
    null_body = ("The shadow model scored as if it were the target: it trained on none of the audited rows, "
                 "so on the in-distribution sets (Original, Held-out) every AUROC should be ~0.5 (columns "
                 "`Null`), beside the real target's. On OOD and generated sets a null AUROC away from 0.5 "
                 "measures how differently any model sees those rows, not membership.\n\n"
                 f"{verdict}\n\n{markdown_table(null) if null is not None else ''}")
    table = reference.as_target.copy()
    text = pd.DataFrame({"targets": table["Targets"]}, index=table.index)
    for metric in ("AUROC", "TPR@0.1%FPR", "TPR@1%FPR"):
        text[metric] = [f"{m:.4f} +- {s:.4f}" if np.isfinite(m) else "n/a"
                        for m, s in zip(table[f"{metric} mean"], table[f"{metric} sd"])]
    skipped = [f"- {name}: {reason}" for name, reason in table["Skipped"].items() if reason]
    target_body = ("Each reference model in turn as the target, the other K - 1 as its reference models, "
                   "scored on the population rows (the LiRA and RMIA papers' evaluation): mean +- sd over "
                   f"the targets.\n\n{markdown_table(text)}" + ("\n\nSkipped:\n" + "\n".join(skipped) if skipped else ""))
    null_body += _link(files, "reference_null_test_results")
    target_body += _link(files, "reference_as_target_results")
    sections = [("Null test of the reference attacks", null_body)] if null is not None else []
    return sections + [("Reference models as targets", target_body)]


def _link(files: dict, key: str) -> str:
    if key not in files:
        return ""
    name = Path(files[key]).name
    return f"\n\nTable: [{name}]({name})"
