"""Tests of attacks/held_out_fpr.py and reporting/held_out_fpr.py."""
import numpy as np
import pytest

from attacks.held_out_fpr import fooled_sets, held_out_fpr_table, held_out_threshold
from utils.naming import held_out_column, held_out_top_column
from reporting.held_out_fpr import plot_held_out_fpr, report_section, verdicts


def test_held_out_threshold_allows_floor_level_times_n_false_positives():
    held_out = np.arange(200, dtype=float)                      # 0 .. 199
    assert held_out_threshold(held_out, 0.01) == 197.0          # 198, 199 above: 2 of 200 = 1%
    assert held_out_threshold(held_out, 0.001) == 199.0         # none above
    assert np.mean(held_out > held_out_threshold(held_out, 0.01)) == 0.01
    with pytest.raises(ValueError, match="held-out scores are empty"):
        held_out_threshold(np.array([]), 0.01)


def test_table_verdicts_and_figure(tmp_path):
    rng = np.random.default_rng(0)
    held_out = rng.normal(size=1000)
    scores = {
        "Fooled": {"Members": rng.normal(1, 1, 100), "Held-out": held_out, "Original": rng.normal(size=100),
                   "Noise": rng.normal(3, 1, 100)},
        "Robust": {"Members": rng.normal(1, 1, 100), "Held-out": held_out, "Original": rng.normal(size=100),
                   "Noise": rng.normal(-3, 1, 100)},
        "Saturated": {"Members": np.ones(100), "Held-out": np.r_[np.ones(50), np.zeros(950)],
                      "Original": np.ones(100), "Noise": np.ones(100)},
    }
    table = held_out_fpr_table(scores)
    assert list(table.index) == ["Members", "Held-out", "Original", "Noise"]
    assert table.loc["Held-out", held_out_column("Fooled", 0.01)] == 0.01
    assert table.loc["Noise", held_out_column("Fooled", 0.01)] > 0.5 and table.loc["Noise", held_out_column("Robust", 0.01)] == 0
    assert fooled_sets(table, "Fooled") == {"Noise": table.loc["Noise", held_out_column("Fooled", 0.01)]}
    assert fooled_sets(table, "Robust") == {}
    sentences = verdicts(table)
    assert sentences[0].startswith("**Fooled** is fooled") and "Noise" in sentences[0]
    assert sentences[1].startswith("**Robust** is not fooled")
    assert sentences[2].startswith("**Saturated** cannot be judged at 1%: 5% of held-out")
    assert "Noise 100%" in sentences[2]
    assert table.loc["Noise", held_out_top_column("Robust")] == 0.0
    assert table.loc["Noise", held_out_column("Saturated", 0.01)] == 0.0
    table.insert(0, "Label source", ["label", "label", "label", "predicted"])
    assert plot_held_out_fpr(table, tmp_path / "fpr.png").stat().st_size > 0
    section = report_section(table, None, None)
    assert "| Noise | predicted |" in section
