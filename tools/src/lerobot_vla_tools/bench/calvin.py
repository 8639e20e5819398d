"""CALVIN ABC->D (VITA-VLA Table 1, VLA-Adapter Table 6): the official 1000 chains of 5 subtasks; the success
rate of completing the first k subtasks in a row (k = 1..5) and the average completed length.

Runs ``--env.type=calvin`` (plugin ``lerobot_env_calvin``), where an episode is one chain and its summed reward
is the chain's completed length, so the table comes from the ``sum_rewards`` LeRobot writes in eval_info.json.
Chains are run in blocks (``--chains_per_unit``, 100 by default) so an interrupted run resumes block by block.
"""

from __future__ import annotations

from . import paper_results
from .base import PaperRow, Protocol, ProtocolError, ResultTable, Unit, UnitResult, mean, parse_selection

SPLITS = ("ABC_D", "ABCD_D", "D_D")
CHAIN_LENGTH = 5


class CalvinProtocol(Protocol):
    name = "calvin"
    title = "CALVIN {split}: tasks completed in a row (%) and average length"
    default_trials = 1000  # chains
    default_seeds = (1000,)
    preset_benchmark = None
    tasks_help = "the CALVIN split (ABC_D, ABCD_D or D_D; default ABC_D); --trials is the number of chains"

    def __init__(self, chains_per_unit: int = 100):
        if chains_per_unit < 1:
            raise ProtocolError(f"--chains_per_unit must be >= 1, got {chains_per_unit}")
        self.chains_per_unit = chains_per_unit

    @staticmethod
    def split(tasks: str | None) -> str:
        items = parse_selection(tasks) or ["ABC_D"]
        if len(items) != 1 or items[0] not in SPLITS:
            raise ProtocolError(f"--tasks: CALVIN takes one split, one of {', '.join(SPLITS)}; got {tasks!r}")
        return items[0]

    def units(self, tasks: str | None, trials: int, seeds: list[int]) -> list[Unit]:
        split = self.split(tasks)
        if trials > 1000:
            raise ProtocolError(f"--trials: CALVIN has 1000 evaluation chains, got {trials}")
        units = []
        for seed in seeds:
            for first in range(0, trials, self.chains_per_unit):
                n = min(self.chains_per_unit, trials - first)
                units.append(
                    Unit(
                        key=f"seed{seed}/{split}/chains{first:04d}-{first + n - 1:04d}",
                        labels={"split": split, "first_chain": first, "seed": seed},
                        env={"type": "calvin", "task": split, "first_chain": first},
                        n_episodes=n,
                        seed=seed,
                    )
                )
        return units

    def table(self, units: list[Unit], results: dict[str, UnitResult]) -> ResultTable:
        """Completed lengths (summed rewards, 0..5) of all chains; success at k = share of chains of length >= k."""
        done = [u for u in units if u.key in results]
        lengths: list[int] = []
        for u in done:
            for r in results[u.key].sum_rewards:
                if not 0 <= round(r) <= CHAIN_LENGTH or abs(r - round(r)) > 1e-6:
                    raise ValueError(
                        f"calvin unit {u.key}: episode reward {r} is not a chain length 0..5; was it run with "
                        "--env.type=calvin?"
                    )
                lengths.append(round(r))
        ours: dict[str, float | None] = {}
        for k in range(1, CHAIN_LENGTH + 1):
            ours[str(k)] = 100.0 * sum(length >= k for length in lengths) / len(lengths) if lengths else None
        ours["avg_len"] = mean([float(x) for x in lengths]) if lengths else None
        split = done[0].labels["split"] if done else "ABC_D"
        notes = []
        if len(lengths) < 1000:
            notes.append(f"Subset: {len(lengths)} of the 1000 chains (the first ones of the official order).")
        return ResultTable(
            title=self.title.format(split=split.replace("_", "->")),
            columns=[(str(k), str(k)) for k in range(1, CHAIN_LENGTH + 1)] + [("avg_len", "Avg. Len.")],
            ours=ours,
            ours_label="",
            paper_rows=self.paper_rows() if split == "ABC_D" else [],
            percent_columns=tuple(str(k) for k in range(1, CHAIN_LENGTH + 1)),
            episodes=len(lengths),
            notes=notes,
        )

    def paper_rows(self) -> list[PaperRow]:
        return list(paper_results.CALVIN)
