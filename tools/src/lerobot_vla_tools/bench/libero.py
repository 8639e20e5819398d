"""LIBERO: the four suites (spatial, object, goal, long = ``libero_10``), 10 tasks each, 50 trials per task
(VLA-Adapter Sec. 4.2; Evo-1 runs 10 trials five times), per-suite success and their mean (Evo-1 / VLA-Adapter
Table 1 / 5)."""

from __future__ import annotations

from . import paper_results
from .base import PaperRow, Protocol, ProtocolError, ResultTable, Unit, UnitResult, mean, parse_selection, std

SUITES = {"spatial": "libero_spatial", "object": "libero_object", "goal": "libero_goal", "long": "libero_10"}
TASKS_PER_SUITE = 10
LABELS = {"spatial": "Spatial", "object": "Object", "goal": "Goal", "long": "Long", "avg": "Avg."}


def _suite_column(name: str) -> str:
    key = name.strip().lower()
    for column, suite in SUITES.items():
        if key in (column, suite, suite.removeprefix("libero_"), f"libero_{column}"):
            return column
    raise ProtocolError(
        f"--tasks: unknown LIBERO suite {name!r}; choose from {', '.join(SUITES.values())} "
        "(or spatial, object, goal, long), optionally with task ids: libero_spatial:0,1"
    )


def parse_libero_tasks(spec: str | None) -> list[tuple[str, list[int]]]:
    """``"libero_spatial:0-2,libero_10"`` -> ``[("spatial", [0, 1, 2]), ("long", [0..9])]`` (default: all).

    Task ids follow a suite as ``:i``, ``:i-j`` or further comma-separated integers.
    """
    items = parse_selection(spec)
    if not items:
        return [(column, list(range(TASKS_PER_SUITE))) for column in SUITES]
    out: dict[str, list[int]] = {}
    current: str | None = None
    for item in items:
        if item[0].isdigit():  # more task ids of the suite named before
            if current is None:
                raise ProtocolError(
                    f"--tasks: task id {item!r} given before a suite name (e.g. libero_spatial:0,1)"
                )
            ids_text = item
        else:
            name, _, ids_text = item.partition(":")
            current = _suite_column(name)
            out.setdefault(current, [])
            if not ids_text:
                out[current] = list(range(TASKS_PER_SUITE))
                continue
        lo, _, hi = ids_text.partition("-")
        try:
            ids = list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        except ValueError:
            raise ProtocolError(
                f"--tasks: LIBERO task ids are integers or ranges like 0-4, got {ids_text!r}"
            ) from None
        for i in ids:
            if not 0 <= i < TASKS_PER_SUITE:
                raise ProtocolError(f"--tasks: LIBERO task id {i} out of range 0..{TASKS_PER_SUITE - 1}")
        out[current] = sorted(set(out[current]) | set(ids))
    return list(out.items())


class LiberoProtocol(Protocol):
    name = "libero"
    title = "LIBERO: success rate (%)"
    default_trials = 50
    default_seeds = (1000,)
    preset_benchmark = "libero"
    tasks_help = "suites (libero_spatial, libero_object, libero_goal, libero_10), each optionally with task ids: libero_goal:0-4"

    def units(self, tasks: str | None, trials: int, seeds: list[int]) -> list[Unit]:
        return [
            Unit(
                key=f"seed{seed}/{SUITES[column]}/task{tid}",
                labels={"suite": column, "task_id": tid, "seed": seed},
                env={"type": "libero", "task": SUITES[column], "task_ids": [tid]},
                n_episodes=trials,
                seed=seed,
                preset_suite=SUITES[column],
            )
            for seed in seeds
            for column, ids in parse_libero_tasks(tasks)
            for tid in ids
        ]

    def table(self, units: list[Unit], results: dict[str, UnitResult]) -> ResultTable:
        """Per run (seed): a suite's rate pools its tasks' episodes; Avg. is the mean of the suites present."""
        done = [u for u in units if u.key in results]
        suites = [c for c in SUITES if any(u.labels["suite"] == c for u in done)]
        per_seed: dict[str, list[float]] = {c: [] for c in [*suites, "avg"]}
        for seed in sorted({u.seed for u in done}):
            rates = {}
            for c in suites:
                eps = [
                    s
                    for u in done
                    if u.seed == seed and u.labels["suite"] == c
                    for s in results[u.key].successes
                ]
                if eps:
                    rates[c] = 100.0 * sum(eps) / len(eps)
                    per_seed[c].append(rates[c])
            per_seed["avg"].append(mean(list(rates.values())))
        notes = []
        n_tasks = len({(u.labels["suite"], u.labels["task_id"]) for u in done})
        if n_tasks < 40:
            notes.append(f"Subset: {n_tasks} of the 40 tasks; Avg. is the mean over the suites present.")
        columns = [(c, LABELS[c]) for c in [*SUITES, "avg"]]
        return ResultTable(
            title=self.title,
            columns=columns,
            ours={k: (mean(per_seed[k]) if per_seed.get(k) else None) for k, _ in columns},
            ours_std={k: std(v) for k, v in per_seed.items() if v},
            ours_label="",
            paper_rows=self.paper_rows(),
            percent_columns=tuple(k for k, _ in columns),
            episodes=sum(len(results[u.key].successes) for u in done),
            notes=notes,
        )

    def paper_rows(self) -> list[PaperRow]:
        return list(paper_results.LIBERO)
