"""Meta-World as Evo-1 evaluates it (Sec. 4.1.1, Table 1): the 50 tasks in four difficulty groups (supplement
Table 3), 10 trials per task, five independent runs; per-group success and their mean."""

from __future__ import annotations

from lerobot_vla_tools.data.metaworld_tasks import DIFFICULTY_GROUPS, TASK_DIFFICULTY, resolve_tasks

from . import paper_results
from .base import PaperRow, Protocol, ProtocolError, ResultTable, Unit, UnitResult, mean, std

GROUP_LABELS = {"easy": "Easy", "medium": "Medium", "hard": "Hard", "very_hard": "Very Hard", "avg": "Avg."}


class MetaWorldProtocol(Protocol):
    name = "metaworld"
    title = "Meta-World MT50 (Evo-1 protocol): success rate (%)"
    default_trials = 10
    default_seeds = (1000, 2000, 3000, 4000, 5000)
    preset_benchmark = "metaworld"
    tasks_help = (
        "groups (easy, medium, hard, very_hard, all) and/or task names, comma-separated (default: all)"
    )

    def units(self, tasks: str | None, trials: int, seeds: list[int]) -> list[Unit]:
        try:
            names = resolve_tasks(tasks or "all")
        except ValueError as err:
            raise ProtocolError(f"--{err}") from err
        return [
            Unit(
                key=f"seed{seed}/{TASK_DIFFICULTY[task]}/{task}",
                labels={"group": TASK_DIFFICULTY[task], "task": task, "seed": seed},
                env={"type": "metaworld", "task": task},
                n_episodes=trials,
                seed=seed,
            )
            for seed in seeds
            for task in names
        ]

    def table(self, units: list[Unit], results: dict[str, UnitResult]) -> ResultTable:
        """Per run (seed): a group's rate pools its tasks' episodes; the average is the mean of the group rates
        (Evo-1's client and Table 1: 80.6 = mean(89.2, 76.8, 77.2, 79.2)). The row is the mean over runs."""
        done = [u for u in units if u.key in results]
        seeds = sorted({u.seed for u in done})
        groups = [g for g in DIFFICULTY_GROUPS if any(u.labels["group"] == g for u in done)]
        per_seed: dict[str, list[float]] = {g: [] for g in [*groups, "avg"]}
        for seed in seeds:
            rates = {}
            for g in groups:
                episodes = [
                    s
                    for u in done
                    if u.seed == seed and u.labels["group"] == g
                    for s in results[u.key].successes
                ]
                if episodes:
                    rates[g] = 100.0 * sum(episodes) / len(episodes)
                    per_seed[g].append(rates[g])
            per_seed["avg"].append(mean(list(rates.values())))
        columns = [(g, GROUP_LABELS[g]) for g in [*DIFFICULTY_GROUPS, "avg"]]
        ours = {k: (mean(per_seed[k]) if per_seed.get(k) else None) for k, _ in columns}
        notes = []
        n_tasks = len({u.labels["task"] for u in done})
        if n_tasks < 50:
            notes.append(
                f"Subset: {n_tasks} of the 50 tasks; Avg. is the mean over the groups present ({', '.join(groups)})."
            )
        return ResultTable(
            title=self.title,
            columns=columns,
            ours=ours,
            ours_std={k: std(v) for k, v in per_seed.items() if v},
            ours_label="",
            paper_rows=self.paper_rows(),
            percent_columns=tuple(k for k, _ in columns),
            episodes=sum(len(results[u.key].successes) for u in done),
            notes=notes,
        )

    def paper_rows(self) -> list[PaperRow]:
        return list(paper_results.METAWORLD)
