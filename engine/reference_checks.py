"""Checks of the reference attacks' measurement, on the arrays the run already has.

- **Null test**: the shadow model as the target. It trained on none of the audited rows (the
  target's members, Original and held-out non-members, the OOD/fake sets), so every reference
  attack should give AUROC ~0.5 on every set. An attack is flagged as a measurement problem when
  its null AUROC on Original differs from 0.5 by more than chance allows: the two-sided
  Mann-Whitney test (``scipy.stats.mannwhitneyu``, whose U is the AUROC times the pair count)
  rejects at ``NULL_ALPHA / m`` for m attacks (Bonferroni), so a run with fair attacks flags any of
  them with probability at most ``NULL_ALPHA`` (1%; 200 vs 200 rows, 6 attacks: a band of about
  0.5 +- 0.091). The table also gives each null AUROC's 95% interval (Hanley-McNeil standard error).
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

NULL_ALPHA = 0.01      # family-wise false-alarm rate of the null test over all reference attacks of a run
NULL_SET = "Original"
LAYOUT_BIAS = (0.05, 0.069)   # |null AUROC - 0.5| of RMIA under the former layout (members K/2 OUT, others K)


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
                if label:
                    low, high = auroc_interval(auroc, len(members), len(others))
                    row[f"{attack} Null AUROC low"], row[f"{attack} Null AUROC high"] = low, high
                    row[f"{attack} Null p"] = mann_whitney_p(members, others)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "set"
    return table


def auroc_interval(auroc: float, n_members: int, n_others: int, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` normal interval of an AUROC from its Hanley-McNeil (1982) standard error."""
    from scipy.stats import norm

    a, m, n = float(auroc), max(n_members, 1), max(n_others, 1)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = np.sqrt(max(a * (1 - a) + (m - 1) * (q1 - a * a) + (n - 1) * (q2 - a * a), 0.0) / (m * n))
    half = norm.ppf(0.5 + level / 2) * se
    return max(a - half, 0.0), min(a + half, 1.0)


def mann_whitney_p(members: np.ndarray, others: np.ndarray) -> float:
    """Two-sided p-value that the two score samples are exchangeable (AUROC = 0.5): the
    Mann-Whitney U test, normal approximation with the tie correction."""
    from scipy.stats import mannwhitneyu

    if not len(members) or not len(others):
        return float("nan")
    return float(mannwhitneyu(members, others, alternative="two-sided", method="asymptotic").pvalue)


def null_p_threshold(attacks: int) -> float:
    """The p-value below which one of ``attacks`` null tests flags (Bonferroni: ``NULL_ALPHA / attacks``)."""
    return NULL_ALPHA / max(int(attacks), 1)


def null_power_sentence(attacks: int, n_members: int = 200, n_others: int = 200) -> str:
    """What the null test can detect: its band around 0.5 and its power against the former layout's
    bias (:data:`LAYOUT_BIAS`) and against 0.1, from the AUROC's null standard error
    ``sqrt((m + n + 1) / (12 m n))``."""
    from scipy.stats import norm

    se = np.sqrt((n_members + n_others + 1) / (12 * n_members * n_others))
    band = norm.isf(null_p_threshold(attacks) / 2) * se
    power = lambda bias: norm.sf((band - bias) / se) + norm.cdf((-band - bias) / se)
    low, high = (power(b) for b in LAYOUT_BIAS)
    return (f"Power ({n_members} vs {n_others} rows, {attacks} attacks: flagged outside about 0.5 +- {band:.3f}): "
            f"against the bias of the layout this package used before (members' statistics from K/2 OUT models, "
            f"non-members' from K, saturated probabilities: RMIA's null AUROC 0.43-0.45) it flags an attack in "
            f"only {low:.0%}-{high:.0%} of runs, a bias of 0.1 in {power(0.1):.0%}: a pass is no proof of a fair "
            "layout, which the package keeps by construction (equal model counts per row, attacks/equal_counts.py).")


def null_test_problems(table: pd.DataFrame) -> list[str]:
    """Attacks whose null AUROC on Original differs from 0.5 at the family-wise level NULL_ALPHA
    (Bonferroni over the attacks in ``table``), as sentences."""
    if NULL_SET not in table.index:
        return []
    attacks = [c[:-len(" Null AUROC")] for c in table.columns if c.endswith(" Null AUROC")]
    problems = []
    for attack in attacks:
        value, p = float(table.loc[NULL_SET, f"{attack} Null AUROC"]), _null_p(table, attack)
        if p < null_p_threshold(len(attacks)):
            problems.append(f"**{attack}**: null AUROC {value:.3f} on {NULL_SET} {_interval_text(table, attack)}, "
                            f"p = {p:.2g} < {NULL_ALPHA:g}/{len(attacks)}: a measurement problem, not a leak "
                            "of the target")
    return problems


def null_test_passed(table: pd.DataFrame | None, attack: str) -> bool:
    """Whether ``attack`` passes the null test of ``table`` (True when it is not in the table)."""
    if table is None:
        return True
    return not any(problem.startswith(f"**{attack}**:") for problem in null_test_problems(table))


def flagged_attacks(reference) -> list[str]:
    """Names of the attacks whose null test failed in ``reference`` (a ReferenceOutcome or None):
    what the summary's headlines (:func:`reporting.summary.strongest_at_low_fpr`,
    :func:`reporting.held_out_fpr.fooled_summary`) leave out."""
    table = getattr(reference, "null_test", None)
    if table is None:
        return []
    return [column[:-len(" Null AUROC")] for column in table.columns
            if column.endswith(" Null AUROC") and not null_test_passed(table, column[:-len(" Null AUROC")])]


def _null_p(table: pd.DataFrame, attack: str) -> float:
    column = f"{attack} Null p"
    return float(table.loc[NULL_SET, column]) if column in table.columns else float("nan")


def _interval_text(table: pd.DataFrame, attack: str) -> str:
    low, high = (f"{attack} Null AUROC low", f"{attack} Null AUROC high")
    if low not in table.columns:
        return ""
    return f"(95% interval [{table.loc[NULL_SET, low]:.3f}, {table.loc[NULL_SET, high]:.3f}])"


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
    sections = []
    if null is not None:
        problems = null_test_problems(null)
        attacks = [c[:-len(" Null AUROC")] for c in null.columns if c.endswith(" Null AUROC")]
        listed = ", ".join(f"{a} {null.loc[NULL_SET, a + ' Null AUROC']:.3f} [{null.loc[NULL_SET, a + ' Null AUROC low']:.3f}, "
                           f"{null.loc[NULL_SET, a + ' Null AUROC high']:.3f}]"
                           for a in attacks if a + " Null AUROC low" in null.columns) if NULL_SET in null.index else ""
        rule = (f"An attack is flagged when the two-sided Mann-Whitney test of its null scores (members vs "
                f"{NULL_SET}) rejects AUROC = 0.5 at {NULL_ALPHA:g} divided by the number of attacks "
                f"({len(attacks)}): a run of fair attacks flags any of them at most {NULL_ALPHA:.0%} of the time. "
                + null_power_sentence(len(attacks)))
        verdict = ("\n".join(f"- {p}" for p in problems) if problems else
                   f"Every reference attack passes the null test on {NULL_SET}.") + \
            (f" Null AUROC on {NULL_SET} (95% interval): {listed}." if listed else "") + "\n\n" + rule
        null_body = ("The shadow model scored as if it were the target: it trained on none of the audited rows, "
                     "so on the in-distribution sets (Original, Held-out) every AUROC should be ~0.5 (columns "
                     "`Null`), beside the real target's. On OOD and generated sets a null AUROC away from 0.5 "
                     "measures how differently any model sees those rows, not membership.\n\n"
                     f"{verdict}\n\n{markdown_table(null)}")
        sections.append(("Null test of the reference attacks", null_body + _link(files, "reference_null_test_results")))
    table = reference.as_target.copy()
    text = pd.DataFrame({"targets": table["Targets"]}, index=table.index)
    for metric in ("AUROC", "TPR@0.1%FPR", "TPR@1%FPR"):
        text[metric] = [f"{m:.4f} +- {s:.4f}" if np.isfinite(m) else "n/a"
                        for m, s in zip(table[f"{metric} mean"], table[f"{metric} sd"])]
    skipped = [f"- {name}: {reason}" for name, reason in table["Skipped"].items() if reason]
    target_body = ("Each reference model in turn as the target, the other K - 1 as its reference models, "
                   "scored on the population rows (the LiRA and RMIA papers' evaluation): mean +- sd over "
                   f"the targets.\n\n{markdown_table(text)}" + ("\n\nSkipped:\n" + "\n".join(skipped) if skipped else ""))
    target_body += _link(files, "reference_as_target_results")
    return sections + [("Reference models as targets", target_body)]


def _link(files: dict, key: str) -> str:
    if key not in files:
        return ""
    name = Path(files[key]).name
    return f"\n\nTable: [{name}]({name})"
