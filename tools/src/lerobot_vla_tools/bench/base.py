"""What a paper protocol is: evaluation units (one ``lerobot-eval`` run each), their results, and the table.

A protocol never evaluates anything itself. It splits the paper's evaluation into *units* - one task (or one
block of CALVIN chains) at one seed - that ``lerobot-vla-bench`` runs as separate ``lerobot-eval`` processes, and
it turns the ``eval_info.json`` files those write into the paper's table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path


class ProtocolError(ValueError):
    """Bad protocol input (unknown names, inconsistent settings); the message names the flag and the fix."""


@dataclass(frozen=True)
class Unit:
    """One ``lerobot-eval`` run of a protocol.

    Attributes:
        key: stable relative directory of the run's output (``seed1000/easy/reach-v3``).
        labels: what the unit is (``{"group": "easy", "task": "reach-v3", "seed": 1000}``), used by the table.
        env: ``--env.<field>`` values, including ``type``.
        n_episodes: ``--eval.n_episodes``.
        seed: ``--seed`` (episode ``e`` of the run uses seed ``seed + e``).
        preset_suite: the sub-benchmark a policy preset may depend on (the LIBERO suite), else None.
    """

    key: str
    labels: dict
    env: dict
    n_episodes: int
    seed: int
    preset_suite: str | None = None


@dataclass(frozen=True)
class UnitResult:
    """The episodes of one finished unit, read from LeRobot's ``eval_info.json``."""

    successes: tuple[bool, ...]
    sum_rewards: tuple[float, ...]
    eval_s: float

    @classmethod
    def from_eval_info(cls, path: str | Path) -> UnitResult:
        """Read ``eval_info.json`` as ``lerobot-eval`` writes it (``per_task[*].metrics`` lists, ``overall``).

        Raises:
            ValueError: not a LeRobot eval_info file (the message names the file and the missing key).
        """
        path = Path(path)
        try:
            info = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a readable eval_info.json ({err})") from err
        if "per_task" not in info or "overall" not in info:
            raise ValueError(f"{path}: not a lerobot-eval eval_info.json (no 'per_task'/'overall' key)")
        successes: list[bool] = []
        rewards: list[float] = []
        for task in info["per_task"]:
            metrics = task["metrics"]
            successes.extend(bool(s) for s in metrics["successes"])
            rewards.extend(float(r) for r in metrics["sum_rewards"])
        return cls(tuple(successes), tuple(rewards), float(info["overall"].get("eval_s", float("nan"))))

    @property
    def success_rate(self) -> float:
        """Fraction of successful episodes (0..1)."""
        return sum(self.successes) / len(self.successes) if self.successes else float("nan")


@dataclass(frozen=True)
class PaperRow:
    """A row a paper reports, quoted for comparison.

    Attributes:
        model: the row label as printed.
        values: column key -> number (None where the paper has no number for that column).
        source: ``"<paper> Table <n>"``.
        chart: also drawn in the bar chart (the rows of the papers this project implements, plus a few).
    """

    model: str
    values: dict[str, float | None]
    source: str
    chart: bool = False


@dataclass
class ResultTable:
    """A paper-format table: our row (mean over seeds, with the spread), the papers' rows, notes."""

    title: str
    columns: list[tuple[str, str]]
    ours: dict[str, float | None]
    ours_label: str
    paper_rows: list[PaperRow]
    ours_std: dict[str, float] = field(default_factory=dict)
    percent_columns: tuple[str, ...] = ()
    episodes: int = 0
    notes: list[str] = field(default_factory=list)

    def fmt(self, key: str, value: float | None, std: float | None = None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        text = f"{value:.1f}" if key in self.percent_columns else f"{value:.2f}"
        if std is not None and not math.isnan(std) and std > 0:
            text += f" ± {std:.1f}" if key in self.percent_columns else f" ± {std:.2f}"
        return text


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def std(values: list[float]) -> float:
    """Sample standard deviation (0 for a single value)."""
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def parse_selection(spec: str | None) -> list[str]:
    """Split a comma-separated ``--tasks`` value (empty or None -> [])."""
    if not spec:
        return []
    return [item.strip() for item in spec.split(",") if item.strip()]


class Protocol:
    """A paper's evaluation protocol. Subclasses define the units, the table and the papers' rows.

    Attributes:
        name: ``--protocol`` value.
        title: what the table reproduces.
        default_trials: episodes per task and seed (``--trials``).
        default_seeds: ``--seeds`` (one run per seed; the table reports their mean and spread).
        preset_benchmark: the key of the Evo-1 preset for this benchmark (``recipes.evo1_presets``), if any.
        tasks_help: what ``--tasks`` accepts.
    """

    name: str = ""
    title: str = ""
    default_trials: int = 1
    default_seeds: tuple[int, ...] = (1000,)
    preset_benchmark: str | None = None
    tasks_help: str = ""

    def units(self, tasks: str | None, trials: int, seeds: list[int]) -> list[Unit]:
        raise NotImplementedError

    def table(self, units: list[Unit], results: dict[str, UnitResult]) -> ResultTable:
        raise NotImplementedError

    def paper_rows(self) -> list[PaperRow]:
        raise NotImplementedError


def check_trials_and_seeds(trials: int, seeds: list[int]) -> None:
    """Each seed's run uses episode seeds ``seed .. seed + trials - 1``; runs must not share episodes.

    Raises:
        ProtocolError: ``trials`` < 1, no seed, a repeated seed, or overlapping episode ranges.
    """
    if trials < 1:
        raise ProtocolError(f"--trials must be >= 1, got {trials}")
    if not seeds:
        raise ProtocolError("--seeds: give at least one seed, e.g. --seeds='[1000,2000]'")
    if len(set(seeds)) != len(seeds):
        raise ProtocolError(f"--seeds: repeated seed in {seeds}")
    ordered = sorted(seeds)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b - a < trials:
            raise ProtocolError(
                f"--seeds: runs with seeds {a} and {b} would share episodes (each run uses seeds seed..seed+{trials - 1}); "
                f"space the seeds at least {trials} apart, e.g. --seeds='[{', '.join(str(1000 * (i + 1)) for i in range(len(seeds)))}]'"
            )
