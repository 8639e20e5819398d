"""The numbers the papers report, quoted for comparison next to a run's own row.

Sources (the papers' own tables): Evo-1 Table 1 (Meta-World, LIBERO, RoboTwin), VLA-Adapter Table 5
(LIBERO) and Table 6 (CALVIN ABC->D), VITA-VLA Table 1 (CALVIN ABC->D) and Table 2 (LIBERO). Values are success
rates in percent, CALVIN's ``avg_len`` is the average number of subtasks completed in a row (0-5). ``None`` marks a
cell the paper does not give (or, for Evo-1's RoboTwin baselines, one our copy of Table 1 does not show).
"""

from __future__ import annotations

from .base import PaperRow

EVO1_T1 = "Evo-1 Table 1"
VLA_ADAPTER_T5 = "VLA-Adapter Table 5"
VLA_ADAPTER_T6 = "VLA-Adapter Table 6"
VITA_VLA_T1 = "VITA-VLA Table 1"
VITA_VLA_T2 = "VITA-VLA Table 2"

METAWORLD_COLUMNS = ("easy", "medium", "hard", "very_hard", "avg")


def _mw(model: str, values: tuple[float, ...], chart: bool = True) -> PaperRow:
    return PaperRow(model, dict(zip(METAWORLD_COLUMNS, values, strict=True)), EVO1_T1, chart)


#: Meta-World, Evo-1 Table 1 (10 trials per task, average of five runs; Avg. = mean of the four groups).
METAWORLD: list[PaperRow] = [
    _mw("Diffusion Policy", (23.1, 10.7, 1.9, 6.1, 10.5)),
    _mw("TinyVLA-H", (77.6, 21.5, 11.4, 15.8, 31.6)),
    _mw("π0", (71.8, 48.2, 41.7, 30.0, 47.9)),
    _mw("SmolVLA", (87.1, 51.8, 70.0, 64.0, 68.2)),
    _mw("Evo-1", (89.2, 76.8, 77.2, 79.2, 80.6)),
]

LIBERO_COLUMNS = ("spatial", "object", "goal", "long", "avg")


def _lb(model: str, values: tuple[float | None, ...], source: str, chart: bool = False) -> PaperRow:
    return PaperRow(model, dict(zip(LIBERO_COLUMNS, values, strict=True)), source, chart)


#: LIBERO (spatial / object / goal / long = libero_10; Avg. = mean of the four suites).
LIBERO: list[PaperRow] = [
    # Evo-1 Table 1 (10 trials per task, average of five runs).
    _lb("OpenVLA", (84.7, 88.4, 79.2, 53.7, 76.5), EVO1_T1),
    _lb("CoT-VLA", (87.5, 91.6, 87.6, 69.0, 81.1), EVO1_T1),
    _lb("π0-FAST", (96.4, 96.8, 88.6, 60.2, 85.5), EVO1_T1),
    _lb("SmolVLA", (93.0, 94.0, 91.0, 77.0, 88.8), EVO1_T1),
    _lb("GR00T N1", (94.4, 97.6, 93.0, 90.6, 93.9), EVO1_T1),
    _lb("π0", (96.8, 98.8, 95.8, 85.2, 94.2), EVO1_T1, chart=True),
    _lb("Evo-1", (92.7, 97.7, 96.3, 92.3, 94.8), EVO1_T1, chart=True),
    # VLA-Adapter Table 5 (50 trials per task); rows not already quoted from Evo-1 Table 1 with the same numbers.
    _lb("FlowVLA", (93.2, 95.0, 91.6, 72.6, 88.1), VLA_ADAPTER_T5),
    _lb("UnifiedVLA", (95.4, 98.8, 93.6, 94.0, 95.5), VLA_ADAPTER_T5),
    _lb("OpenVLA-OFT", (97.6, 98.4, 97.9, 94.5, 97.1), VLA_ADAPTER_T5, chart=True),
    _lb("UniVLA", (96.5, 96.8, 95.6, 92.0, 95.2), VLA_ADAPTER_T5),
    _lb("WorldVLA", (87.6, 96.2, 83.4, 60.0, 81.8), VLA_ADAPTER_T5),
    _lb("TraceVLA", (84.6, 85.2, 75.1, 54.1, 74.8), VLA_ADAPTER_T5),
    _lb("MolmoAct", (87.0, 95.4, 87.6, 77.2, 86.6), VLA_ADAPTER_T5),
    _lb("ThinkAct", (88.3, 91.4, 87.1, 70.9, 84.4), VLA_ADAPTER_T5),
    _lb("PD-VLA", (95.5, 96.7, 94.9, 91.7, 94.7), VLA_ADAPTER_T5),
    _lb("4D-VLA", (88.9, 95.2, 90.9, 79.1, 88.6), VLA_ADAPTER_T5),
    _lb("SpatialVLA", (88.2, 89.9, 78.6, 55.5, 78.1), VLA_ADAPTER_T5),
    _lb("NORA", (92.2, 95.4, 89.4, 74.6, 87.9), VLA_ADAPTER_T5),
    _lb("GraspVLA", (None, 94.1, 91.2, 82.0, 89.1), VLA_ADAPTER_T5),
    _lb("Seer (scratch)", (None, None, None, 78.7, 78.7), VLA_ADAPTER_T5),
    _lb("VLA-OS", (87.0, 96.5, 92.7, 66.0, 85.6), VLA_ADAPTER_T5),
    _lb("Diffusion Policy", (78.3, 92.5, 68.3, 50.5, 72.4), VLA_ADAPTER_T5),
    _lb("VLA-Adapter", (97.8, 99.2, 97.2, 95.0, 97.3), VLA_ADAPTER_T5, chart=True),
    # VITA-VLA Table 2 (500 episodes per suite).
    _lb("Octo", (78.9, 85.7, 84.6, 51.1, 75.1), VITA_VLA_T2),
    _lb("VITA-VLA (two-stage)", (98.0, 99.8, 97.9, 93.5, 97.3), VITA_VLA_T2, chart=True),
]

#: RoboTwin 2.0 tasks of Evo-1 Table 1, each in the easy (clean) and hard (randomized) setting.
ROBOTWIN_TASKS = ("click_alarmclock", "dump_bin_bigbin", "place_bread_basket", "place_can_basket")
ROBOTWIN_COLUMNS = tuple(f"{t}/{d}" for t in ROBOTWIN_TASKS for d in ("easy", "hard")) + ("avg",)


def _rt(model: str, values: tuple[float | None, ...]) -> PaperRow:
    return PaperRow(model, dict(zip(ROBOTWIN_COLUMNS, values, strict=True)), EVO1_T1, chart=True)


#: RoboTwin, Evo-1 Table 1 (100 trials per task and setting). Baselines as the RoboTwin 2.0 paper reports
#: them; their Place Can Basket cells are not legible in our copy of the table. Evo-1's average (37.8) and
#: π0's (30.9) are stated in the text of Sec. 4.1.3.
ROBOTWIN: list[PaperRow] = [
    _rt("ACT", (32.0, 4.0, 68.0, 1.0, 6.0, 0.0, None, None, None)),
    _rt("Diffusion Policy", (61.0, 5.0, 49.0, 0.0, 14.0, 0.0, None, None, None)),
    _rt("RDT", (61.0, 12.0, 64.0, 32.0, 10.0, 2.0, None, None, None)),
    _rt("π0", (63.0, 11.0, 82.0, 24.0, 17.0, 4.0, None, None, 30.9)),
    _rt("Evo-1", (77.0, 58.0, 74.0, 37.0, 15.0, 3.0, 37.0, 1.0, 37.8)),
]

CALVIN_COLUMNS = ("1", "2", "3", "4", "5", "avg_len")


def _cv(model: str, values: tuple[float, ...], source: str, chart: bool = False) -> PaperRow:
    return PaperRow(model, dict(zip(CALVIN_COLUMNS, values, strict=True)), source, chart)


#: CALVIN ABC->D, 1000 chains: success rate of the first k subtasks in a row and the average length.
CALVIN: list[PaperRow] = [
    # VITA-VLA Table 1.
    _cv("Susie", (87.0, 69.0, 49.0, 38.0, 26.0, 2.69), VITA_VLA_T1),
    _cv("GR-1", (85.4, 71.2, 59.6, 49.7, 40.1, 3.06), VITA_VLA_T1),
    _cv("Seer-Large (reproduced by VITA-VLA)", (88.4, 80.9, 74.8, 69.6, 62.1, 3.76), VITA_VLA_T1, chart=True),
    _cv("3D-VLA", (44.7, 16.3, 8.1, 1.6, 0.0, 0.71), VITA_VLA_T1),
    _cv("OpenVLA (VITA-VLA's numbers)", (62.8, 18.3, 5.8, 1.8, 1.0, 0.90), VITA_VLA_T1),
    _cv("RoboFlamingo", (82.4, 61.9, 46.6, 33.1, 23.5, 2.48), VITA_VLA_T1),
    _cv("VITA-VLA (only-finetune)", (86.0, 73.2, 60.4, 49.4, 39.8, 3.08), VITA_VLA_T1),
    _cv("VITA-VLA (two-stage)", (92.5, 77.1, 61.0, 49.2, 38.2, 3.18), VITA_VLA_T1, chart=True),
    # VLA-Adapter Table 6.
    _cv("UniVLA", (95.5, 85.8, 75.4, 66.9, 56.5, 3.80), VLA_ADAPTER_T6),
    _cv("OpenVLA (VLA-Adapter's numbers)", (91.3, 77.8, 62.0, 52.1, 43.5, 3.27), VLA_ADAPTER_T6),
    _cv("OpenVLA-OFT", (96.3, 89.1, 82.4, 75.8, 66.5, 4.10), VLA_ADAPTER_T6, chart=True),
    _cv("VLAS", (87.2, 64.2, 40.9, 28.1, 19.6, 2.40), VLA_ADAPTER_T6),
    _cv("LCB", (73.6, 50.2, 28.5, 16.0, 9.9, 1.78), VLA_ADAPTER_T6),
    _cv("RoboDual", (94.4, 82.7, 72.1, 62.4, 54.4, 3.66), VLA_ADAPTER_T6),
    _cv("OpenHelix", (97.1, 91.4, 82.8, 72.6, 64.1, 4.08), VLA_ADAPTER_T6),
    _cv("ReconVLA", (95.6, 87.6, 76.9, 69.3, 64.1, 3.95), VLA_ADAPTER_T6),
    _cv("DeeR", (86.2, 70.1, 51.8, 41.5, 30.4, 2.82), VLA_ADAPTER_T6),
    _cv("VPP", (95.7, 91.2, 86.3, 81.0, 75.0, 4.33), VLA_ADAPTER_T6),
    _cv("SeerLarge (reproduced by VLA-Adapter)", (96.3, 91.6, 86.1, 80.3, 74.0, 4.28), VLA_ADAPTER_T6),
    _cv("MoDE", (96.2, 88.9, 81.1, 71.8, 63.5, 4.01), VLA_ADAPTER_T6),
    _cv("Seer", (94.4, 87.2, 79.9, 72.2, 64.3, 3.98), VLA_ADAPTER_T6),
    _cv("VLA-Adapter", (99.1, 94.6, 88.8, 82.8, 76.5, 4.42), VLA_ADAPTER_T6, chart=True),
]
