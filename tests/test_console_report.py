"""A tiny run through the script's entry point: stage lines, the final summary, the report's order,
and ``--seeds`` on two tiny seeds."""
import re

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.seeds import aggregate_tables

pytestmark = pytest.mark.slow  # end-to-end runs (kept in the default run)

TINY = ["--epochs", "3", "--train_set_size", "120", "--test_set_size", "120", "--attack_set_size", "60",
        "--batch_size", "32", "--reference_models", "0", "--sets", "original", "scaled", "noise", "--quiet"]


def _tiny(tmp_path, *extra):
    return TINY + ["--results_dir", str(tmp_path / "results"), "--pretrained_dir", str(tmp_path / "checkpoints"),
                   *extra]


def test_stage_lines_summary_and_report_order(tmp_path, capsys):
    assert main("digits", _tiny(tmp_path)) == 0
    out = capsys.readouterr().out.splitlines()
    starts = [line for line in out if re.fullmatch(r"\[\d+/\d+\] .+ \.\.\.", line)]
    ends = [line for line in out if re.fullmatch(r"\[\d+/\d+\] .+ \.\.\. \d+\.\d s", line)]
    assert len(starts) == len(ends) == 10                     # one line as each stage starts and ends
    assert starts[0].startswith("[1/10] load data") and ends[-1].startswith("[10/10] figures and report")
    summary = out[out.index(next(line for line in out if line.startswith("== small_cnn_digits: done in"))):]
    assert len(summary) <= 10
    assert any(line.startswith("The Threshold attack") and "Original" in line and "%" in line for line in summary)
    assert any(line.startswith(("Strongest attack at 1% FPR on Original:", "No attack stands out on Original"))
               for line in summary)
    report_line = next(line for line in summary if line.startswith("Report: "))
    report = open(report_line[len("Report: "):], encoding="utf-8").read()
    headings = [line for line in report.splitlines() if line.startswith("## ")]
    assert headings[0] == "## Summary" and headings[-1] == "## Configuration"
    assert headings.index("## Attacks") < headings.index("## Model metrics") < headings.index("## Figures")
    assert report.index("![") < report.index("## Attacks")     # the headline figure comes before the tables
    assert "ECE Target (2nd: shadow)" in report and report.count("_Cannot be judged_ means") <= 1
    assert "| target model | trained in this run, saved to" in report
    assert "| learning rate (Adam) | 0.01 (the default of small_cnn) |" in report
    assert not re.search(r"_[^_]+\.png_", report)             # captions are sentences, not file names
    intervals = pd.read_csv(tmp_path / "results" / "small_cnn_digits_intervals.csv")
    assert {"AUROC", "TPR@1%FPR", "TPR@0.1%FPR", "FPR", "FPR@1%HeldOutFPR"} <= set(intervals["metric"])
    assert ((intervals["low"] <= intervals["estimate"] + 1e-12)
            & (intervals["estimate"] <= intervals["high"] + 1e-12)).all()


def test_seeds_aggregate_on_two_tiny_seeds(tmp_path, capsys):
    assert main("digits", _tiny(tmp_path, "--no_figures", "--seeds", "1", "2")) == 0
    out = capsys.readouterr().out
    assert "2 seeds done in" in out
    results = tmp_path / "results"
    tables = [pd.read_csv(results / f"seed_{s}" / "small_cnn_digits_attack_results.csv", index_col=0)
              for s in (1, 2)]
    aggregate = pd.read_csv(results / "small_cnn_digits_seeds_aggregate.csv", index_col=0)
    column = "Threshold Attack AUROC"
    expected = (tables[0][column] + tables[1][column]) / 2
    assert np.allclose(aggregate[f"{column} mean"], expected, atol=1e-4)
    assert np.allclose(aggregate[f"{column} sd"], (tables[0][column] - tables[1][column]).abs() / np.sqrt(2),
                       atol=1e-4)
    report = (results / "small_cnn_digits_seeds_report.md").read_text()
    assert "How much each cell moves across seeds" in report and "LLLA" in report and " ± " in report


def test_aggregate_needs_two_tables():
    with pytest.raises(ValueError, match="at least two seeds"):
        aggregate_tables([pd.DataFrame({"a": [1.0]})])
