"""Quantiles of a dataset's numeric features over all its frames, in place of LeRobot's per-episode estimate.

LeRobot 0.6 computes q01 ... q99 per episode and aggregates them as the frame-weighted mean of the episodes'
quantiles (``compute_stats.aggregate_feature_stats``). For a value that is constant within each episode but differs
between episodes that mean is not a quantile at all: Meta-World's expert commands the gripper with +1 in every
button-press-topdown frame, -1 in every drawer-open frame and 0 in every reach frame, so every episode has
q01 = q99 and the aggregate has q01 = q99 = the mean (-0.12 in a three-task set). QUANTILES normalisation,
``2 (x - q01) / (q99 - q01) - 1``, then divides by LeRobot's eps (1e-8): normalised gripper actions of 1e8 and a
training loss of 1e15 (A1, measured). Over all frames the quantiles are q01 = -1 and q99 = +1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NUMERIC_DTYPES = ("float32", "float64")


def exact_quantile_stats(root: str | Path) -> list[str]:
    """Rewrite the ``q..`` entries of ``meta/stats.json`` from all frames of the dataset at ``root``.

    Only numeric per-frame features (``float32`` / ``float64``: state, action, timestamp) are touched; images,
    videos and the other statistics (min, max, mean, std, count) stay as LeRobot wrote them. The quantile levels
    are the ones LeRobot wrote (``q01`` = 0.01, ...), computed with ``numpy.quantile`` (linear interpolation).

    Returns:
        the features whose quantiles were rewritten.

    Raises:
        FileNotFoundError: ``root`` is not a finalised LeRobot v3.0 dataset (no meta/info.json, meta/stats.json or
            data parquet files).
    """
    import pandas as pd

    root = Path(root)
    info = json.loads((root / "meta" / "info.json").read_text())
    stats_path = root / "meta" / "stats.json"
    stats = json.loads(stats_path.read_text())
    files = sorted((root / "data").glob("*/*.parquet"))
    if not files:
        raise FileNotFoundError(f"{root}: no data/*/*.parquet files; is it a finalised LeRobot v3.0 dataset?")
    keys = [
        k for k, f in info["features"].items() if f["dtype"] in NUMERIC_DTYPES and k in stats
    ]  # fmt: skip
    frames = pd.concat([pd.read_parquet(f, columns=keys) for f in files], ignore_index=True)
    for key in keys:
        values = np.stack([np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in frames[key]])
        for name in [n for n in stats[key] if n.startswith("q") and n[1:].isdigit()]:
            stats[key][name] = np.quantile(values, int(name[1:]) / 100.0, axis=0).tolist()
    stats_path.write_text(json.dumps(stats, indent=4))
    return keys
