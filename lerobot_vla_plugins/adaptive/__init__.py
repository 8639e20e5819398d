"""Adaptive inference (A1 section 3.3): discrepancy metrics, exit budgets and filtered-quantile threshold
calibration, an exit controller for any policy with per-layer heads, exit statistics and FLOP estimates."""

from .calibration import (
    EXIT_DISTRIBUTIONS,
    assign_exits,
    calibrate_thresholds,
    check_exit_dist,
    exit_budget,
    exit_fractions,
)
from .controller import ExitCalibration, ExitController, ExitResult, exit_layers
from .metrics import DISCREPANCY_METRICS, check_metric, discrepancy
from .stats import ExitStats

__all__ = [
    "DISCREPANCY_METRICS",
    "EXIT_DISTRIBUTIONS",
    "ExitCalibration",
    "ExitController",
    "ExitResult",
    "ExitStats",
    "assign_exits",
    "calibrate_thresholds",
    "check_exit_dist",
    "check_metric",
    "discrepancy",
    "exit_budget",
    "exit_fractions",
    "exit_layers",
]
