"""Console output of a run: the same tables as the CSVs, readably."""
from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.results import format_console

if TYPE_CHECKING:
    from pipeline.run import RunOutputs


def print_run(outputs: RunOutputs) -> None:
    """The run's model checks, tables, skipped sets and files, on stdout."""
    print(f"\n== {outputs.stem.rstrip('_')} ==")
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
