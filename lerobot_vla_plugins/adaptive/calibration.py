"""Exit-threshold calibration by filtered quantiles (A1 section 3.3.1, eq. 7-9; DeeR-VLA's budget families).

``values`` is the matrix V (K exits x N samples, eq. 7) of discrepancies collected over a dataset in one pass.
A budget p over the exits (eq. 8 and appendix eq. 11-12) says which fraction of the samples should exit at
each exit; thresholds are then chosen exit by exit over the samples that have not exited yet (eq. 9),
counting samples the way A1's released ``ExitController.set_threshold`` does. The exact rule (the project's
specification of ``calibrate_thresholds``):

* p_k is proportional to c^(k+1) (``exp``), exp(-(k - c)^2 / 2) (``gauss``), or the gamma pdf at k+1 with shape c
  and scale 2 (``gamma``), k = 0..K-1, c = ``exit_ratio``; ``disable_first_exit`` sets p_0 = 0 (the released
  code does so for 7B/8B backbones); p is normalised to sum 1.
* For k = 0..K-2, over the samples that have not exited yet: m_k = floor(N * p_k). If m_k = 0 or no sample
  remains, the threshold is -inf (nobody exits there). Otherwise it is the m_k-th smallest value of row k among
  the remaining samples (the largest one if fewer than m_k remain), and every remaining sample whose value is
  <= the threshold exits at k (ties may make more than m_k samples exit).
* The last threshold is +inf (everything left exits at the last exit).

At run time an exit fires when the discrepancy is <= its threshold (``assign_exits``).
Differences from the released code: there, a budget larger than the number of remaining samples leaves the
threshold at -1e8 (nobody exits); here it takes the largest remaining value, as specified.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

#: exit distribution name -> what ``exit_ratio`` (c) means for it.
EXIT_DISTRIBUTIONS: dict[str, str] = {
    "exp": "p_k ~ c^(k+1), c > 0 (c < 1 favours early exits, c = 1 is uniform, c > 1 favours late exits)",
    "gauss": "p_k ~ exp(-(k - c)^2 / 2): centred on exit index c, standard deviation 1 exit",
    "gamma": "p_k ~ GammaPDF(k + 1; shape c, scale 2), c > 0",
}


def check_exit_dist(exit_dist: str, exit_ratio: float) -> None:
    """Raise a ValueError naming the field when the distribution or its parameter is invalid."""
    if exit_dist not in EXIT_DISTRIBUTIONS:
        raise ValueError(
            f"exit_dist {exit_dist!r} does not exist; choose one of {sorted(EXIT_DISTRIBUTIONS)}"
        )
    if not math.isfinite(exit_ratio):
        raise ValueError(f"exit_ratio must be a finite number, got {exit_ratio}")
    if exit_dist in ("exp", "gamma") and exit_ratio <= 0:
        raise ValueError(f"exit_ratio must be > 0 for exit_dist={exit_dist!r}, got {exit_ratio}")


def exit_budget(
    num_exits: int, exit_dist: str, exit_ratio: float, disable_first_exit: bool = False
) -> np.ndarray:
    """The target fraction p_k of samples exiting at each of ``num_exits`` exits (float64, sums to 1).

    Raises:
        ValueError: unknown distribution, invalid ``exit_ratio``, or a budget that is zero everywhere.
    """
    check_exit_dist(exit_dist, exit_ratio)
    if num_exits < 1:
        raise ValueError(f"need at least one exit, got {num_exits}")
    k = np.arange(num_exits, dtype=np.float64)
    if exit_dist == "exp":
        p = float(exit_ratio) ** (k + 1)  # eq. (8)
    elif exit_dist == "gauss":
        p = np.exp(-((k - exit_ratio) ** 2) / 2.0)  # appendix eq. (11), sigma = 1
    else:
        from scipy.stats import gamma

        p = gamma.pdf(k + 1, exit_ratio, scale=2.0)  # appendix eq. (12)
    p = np.asarray(p, dtype=np.float64)
    if disable_first_exit:
        p[0] = 0.0
    total = p.sum()
    if num_exits == 1:
        return np.ones(1)
    if not np.isfinite(total) or total <= 0:
        raise ValueError(
            f"exit_dist={exit_dist!r} with exit_ratio={exit_ratio} gives no budget to any of the {num_exits} exits; "
            "choose another exit_ratio"
        )
    return p / total


def _as_matrix(values) -> Tensor:
    v = values if isinstance(values, Tensor) else torch.as_tensor(np.asarray(values, dtype=np.float64))
    if v.dim() != 2 or v.shape[0] < 1 or v.shape[1] < 1:
        raise ValueError(
            f"values must be a (K exits, N samples) matrix with K, N >= 1, got shape {tuple(v.shape)}"
        )
    v = v.detach().cpu()
    if not torch.isfinite(v).all():
        raise ValueError("values contain NaN or infinite discrepancies; check the calibration inputs")
    return v


def calibrate_thresholds(
    values: Tensor, exit_dist: str, exit_ratio: float, disable_first_exit: bool = False
) -> list[float]:
    """Thresholds (K floats, the last +inf) for the discrepancy matrix ``values`` (K, N); see the module doc."""
    v = _as_matrix(values)
    num_exits, n = v.shape
    p = exit_budget(num_exits, exit_dist, exit_ratio, disable_first_exit)
    remaining = torch.ones(n, dtype=torch.bool)
    thresholds: list[float] = []
    for k in range(num_exits - 1):
        m = math.floor(n * p[k])
        if m == 0 or not bool(remaining.any()):
            thresholds.append(-math.inf)
            continue
        row = torch.sort(v[k][remaining]).values
        threshold = row[min(m, row.numel()) - 1]
        thresholds.append(float(threshold))
        remaining &= ~(v[k] <= threshold)  # eq. (9): I <- {n in I | V[k, n] > eta_k}
    thresholds.append(math.inf)
    return thresholds


def assign_exits(values: Tensor, thresholds: Sequence[float]) -> Tensor:
    """The exit index (N,) each sample takes: the first k with values[k, n] <= thresholds[k] (the last exit
    always fires)."""
    v = _as_matrix(values)
    if len(thresholds) != v.shape[0]:
        raise ValueError(f"{len(thresholds)} thresholds for {v.shape[0]} exits")
    thr = torch.tensor([float(t) for t in thresholds], dtype=torch.float64).unsqueeze(1)
    fires = v.double() <= thr
    fires[-1] = True
    return fires.float().argmax(dim=0)


def exit_fractions(exit_index: Tensor, num_exits: int) -> np.ndarray:
    """Observed fraction of samples at each exit, (K,) float64."""
    counts = torch.bincount(exit_index.long().flatten(), minlength=num_exits).double()
    return (counts / counts.sum().clamp_min(1)).numpy()
