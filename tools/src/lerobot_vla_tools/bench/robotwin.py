"""RoboTwin 2.0 as Evo-1 evaluates it (Sec. 4.1.3, Table 1): Click AlarmClock, Dump Bin BigBin, Place Bread
Basket and Place Can Basket, each in the easy (clean scenes, RoboTwin ``demo_clean``) and hard (domain-randomized,
``demo_randomized``) setting, 100 trials; the average over the eight cells.

Easy runs LeRobot's own ``--env.type=robotwin``; hard runs ``--env.type=robotwin_randomized`` (plugin
``lerobot_env_robotwin_randomized``: LeRobot's RoboTwin env with the randomized task config, which LeRobot 0.6.1
cannot select)."""

from __future__ import annotations

from . import paper_results
from .base import PaperRow, Protocol, ProtocolError, ResultTable, Unit, UnitResult, mean, parse_selection, std

DIFFICULTIES = {"easy": "robotwin", "hard": "robotwin_randomized"}


def _known_tasks() -> tuple[str, ...]:
    from lerobot.envs.robotwin import ROBOTWIN_TASKS

    return ROBOTWIN_TASKS


def parse_robotwin_tasks(spec: str | None) -> list[tuple[str, str]]:
    """``"click_alarmclock,place_can_basket:hard,easy"`` -> ``[(task, difficulty), ...]``.

    Items: a task (both settings), ``task:easy`` / ``task:hard``, or ``easy`` / ``hard`` (Evo-1's four tasks in that
    setting). Default: Evo-1's four tasks in both settings.
    """
    items = parse_selection(spec)
    if not items:
        items = list(paper_results.ROBOTWIN_TASKS)
    known = _known_tasks()
    out: list[tuple[str, str]] = []
    for item in items:
        if item in DIFFICULTIES:
            pairs = [(t, item) for t in paper_results.ROBOTWIN_TASKS]
        else:
            task, _, diff = item.partition(":")
            if task not in known:
                raise ProtocolError(
                    f"--tasks: unknown RoboTwin task {task!r}; Evo-1's are {', '.join(paper_results.ROBOTWIN_TASKS)} "
                    f"(all {len(known)} RoboTwin 2.0 tasks are accepted, see lerobot.envs.robotwin.ROBOTWIN_TASKS)"
                )
            if diff and diff not in DIFFICULTIES:
                raise ProtocolError(f"--tasks: {item!r}: the setting after ':' must be easy or hard")
            pairs = [(task, d) for d in ([diff] if diff else list(DIFFICULTIES))]
        out.extend(p for p in pairs if p not in out)
    return out


class RoboTwinProtocol(Protocol):
    name = "robotwin"
    title = "RoboTwin 2.0 (Evo-1 protocol): success rate (%)"
    default_trials = 100
    default_seeds = (1000,)
    preset_benchmark = "robotwin"
    tasks_help = "tasks, task:easy / task:hard, or easy / hard (default: Evo-1's four tasks, both settings)"

    def units(self, tasks: str | None, trials: int, seeds: list[int]) -> list[Unit]:
        return [
            Unit(
                key=f"seed{seed}/{difficulty}/{task}",
                labels={"task": task, "difficulty": difficulty, "seed": seed},
                env={"type": DIFFICULTIES[difficulty], "task": task},
                n_episodes=trials,
                seed=seed,
            )
            for seed in seeds
            for task, difficulty in parse_robotwin_tasks(tasks)
        ]

    def table(self, units: list[Unit], results: dict[str, UnitResult]) -> ResultTable:
        """One cell per (task, setting); Avg. is the mean of the cells present (Evo-1: 37.8 over eight)."""
        done = [u for u in units if u.key in results]
        cells = []
        for u in done:
            cell = f"{u.labels['task']}/{u.labels['difficulty']}"
            if cell not in cells:
                cells.append(cell)
        per_seed: dict[str, list[float]] = {c: [] for c in [*cells, "avg"]}
        for seed in sorted({u.seed for u in done}):
            rates = []
            for u in done:
                if u.seed == seed:
                    rate = 100.0 * results[u.key].success_rate
                    per_seed[f"{u.labels['task']}/{u.labels['difficulty']}"].append(rate)
                    rates.append(rate)
            per_seed["avg"].append(mean(rates))
        paper_cells = [c for c in paper_results.ROBOTWIN_COLUMNS if c != "avg"]
        ordered = [c for c in paper_cells if c in cells] + [c for c in cells if c not in paper_cells]
        columns = [(c, c.replace("_", " ").replace("/", " / ")) for c in ordered] + [("avg", "Avg.")]
        notes = []
        if set(paper_cells) - set(cells):
            notes.append(
                f"Subset: {len(cells)} of Evo-1's 8 task/setting cells; Avg. is the mean over those present."
            )
        return ResultTable(
            title=self.title,
            columns=columns,
            ours={k: (mean(v) if v else None) for k, v in per_seed.items()},
            ours_std={k: std(v) for k, v in per_seed.items() if v},
            ours_label="",
            paper_rows=self.paper_rows(),
            percent_columns=tuple(k for k, _ in columns),
            episodes=sum(len(results[u.key].successes) for u in done),
            notes=notes,
        )

    def paper_rows(self) -> list[PaperRow]:
        return list(paper_results.ROBOTWIN)
