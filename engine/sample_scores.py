"""Per-sample results: which samples each attack calls members, with what score.

One row per evaluated sample (the members, then every non-member set in table order): ``set``,
``index`` (its position in its source: the split or array it was drawn from), ``label`` (the label
the attacks used; -1 for none), ``member`` (the truth), then per attack ``{Attack} score`` and
``{Attack} decision``. Preset runs and audits write it with the same function, as
``{stem}sample_scores.csv``.

The reference attacks' scores are those of one call on every row the run scores together (the
reference population, its z, the shadow's rows and the OOD/fake sets), so what is pooled over rows
depends on that row set: LiRA's fixed variance (below 64 reference models) is pooled over all of
them, and :func:`attacks.reference.lira_scores` called on the file's rows alone pools over fewer
rows: its scores of in-population rows are the file's times a constant, with the same ranking
(digits default run with K = 16, the file's rows alone: 0.607 online, the ratio of the pooled variances;
0.802 offline, of the pooled standard deviations; other row sets give other constants, e.g. 0.904). Online, a row outside the population borrows the IN statistics of the
nearest inside row scored in the same call, which can be another row in a smaller call. With
per-sample variance (K >= 64) offline LiRA's and RMIA's offline scores do not depend on the other
rows (measured at K = 64: offline LiRA identical on the file's rows alone).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from utils.files import atomic_open

SAMPLE_SCORES_SUFFIX = "sample_scores.csv"
MEMBERS = "Members"


def sample_scores_name(stem: str) -> str:
    """``{stem}sample_scores.csv``."""
    return f"{stem}{SAMPLE_SCORES_SUFFIX}"


def sample_scores_table(outputs: Mapping[str, Mapping], labels: Mapping[str, np.ndarray],
                        source_index: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """The per-sample table.

    Parameters
    ----------
    outputs : attack name -> set name (``"Members"`` and each non-member set) -> ``AttackOutputs``
    labels : set name -> labels ``(n,)`` the attacks used (-1: none); its order is the row order
    source_index : set name -> position of each row in its source (default ``0..n-1``)
    """
    source_index = source_index or {}
    blocks = []
    for set_name, set_labels in labels.items():
        n = len(set_labels)
        block = {"set": [set_name] * n,
                 "index": np.asarray(source_index.get(set_name, np.arange(n)), dtype=np.int64),
                 "label": np.asarray(set_labels, dtype=np.int64),
                 "member": np.full(n, set_name == MEMBERS)}
        for attack, per_set in outputs.items():
            if set_name in per_set:
                block[f"{attack} score"] = per_set[set_name].scores
                block[f"{attack} decision"] = per_set[set_name].decisions
        blocks.append(pd.DataFrame(block))
    return pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame()


def write_sample_scores(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the per-sample table atomically (scores with full precision)."""
    path = Path(path)
    with atomic_open(path) as handle:
        table.to_csv(handle, index=False, float_format="%.8g")
    return path
