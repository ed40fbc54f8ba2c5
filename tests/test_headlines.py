"""Headlines that survive their own checks: the strongest attack stands out from chance and passed
its null test; sets scored with the target's predicted class say so; a flagged attack is not judged."""
from __future__ import annotations

import pandas as pd

from reporting.held_out_fpr import fooled_summary, held_out_figure, verdicts
from reporting.summary import strongest_at_low_fpr
from utils.naming import column_name, held_out_column


def attack_table(values: dict) -> pd.DataFrame:
    """``{attack: (AUROC, TPR@1%FPR)}`` on Original."""
    row = {}
    for attack, (auroc, tpr) in values.items():
        row[column_name(attack, "AUROC")], row[column_name(attack, "TPR@1%FPR")] = auroc, tpr
    return pd.DataFrame([row], index=pd.Index(["Original"], name="set"))


def intervals(values: dict) -> pd.DataFrame:
    """``{attack: (low, high)}`` of the AUROC on Original (TPR intervals as wide as the estimate)."""
    rows = []
    for attack, (low, high) in values.items():
        rows.append({"set": "Original", "attack": attack, "metric": "AUROC", "estimate": (low + high) / 2,
                     "low": low, "high": high, "se": (high - low) / 4})
    return pd.DataFrame(rows)


def test_strongest_attack_stands_out_and_passed_its_null_test():
    table = attack_table({"Shokri": (0.557, 0.09), "LOSS": (0.72, 0.05), "RMIA": (0.74, 0.20)})
    bands = intervals({"Shokri": (0.49, 0.62), "LOSS": (0.66, 0.78), "RMIA": (0.68, 0.80)})
    sentence = strongest_at_low_fpr(table, bands, flagged=("RMIA",))
    assert sentence.startswith("Strongest attack at 1% FPR on Original: LOSS") and "RMIA left out" in sentence
    assert strongest_at_low_fpr(table, bands).startswith("Strongest attack at 1% FPR on Original: RMIA")
    chance = attack_table({"Shokri": (0.557, 0.09)})
    assert strongest_at_low_fpr(chance, intervals({"Shokri": (0.49, 0.62)})).startswith("No attack stands out")


def test_held_out_sentences_name_the_label_and_skip_flagged_attacks():
    index = pd.Index(["Members", "Held-out", "Original", "Noise"], name="set")
    table = pd.DataFrame({"Label source": ["label", "label", "label", "predicted"],
                          held_out_column("RMIA", 0.01): [0.3, 0.01, 0.0, 0.6],
                          held_out_column("RMIA", 0.001): [0.2, 0.0, 0.0, 0.5],
                          held_out_column("LOSS", 0.01): [0.3, 0.01, 0.0, 0.2],
                          held_out_column("LOSS", 0.001): [0.2, 0.0, 0.0, 0.1]}, index=index)
    assert "Noise (label: the target's predicted class) 60.0%" in verdicts(table)[0]
    flagged = verdicts(table, flagged=("RMIA",))
    assert flagged[0].startswith("**RMIA** is not judged: its null test failed")
    summary = fooled_summary(table, flagged=("RMIA",))
    assert "LOSS by Noise (label: the target's predicted class)" in summary and "RMIA left out" in summary
    assert "RMIA by" not in summary
    figure = held_out_figure(table)
    ticks = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert "Noise (pred. label)" in ticks and "predicted class" in figure.axes[0].get_xlabel()
