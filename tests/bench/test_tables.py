"""The papers' tables from LeRobot eval_info.json files, and the files written for them."""

import csv
import io
import json

import pytest
from lerobot_vla_tools.bench import UnitResult, get_protocol
from lerobot_vla_tools.bench.report import to_csv, to_markdown, write_report


def result(successes, rewards=None):
    return UnitResult(
        tuple(successes), tuple(rewards if rewards is not None else [float(s) for s in successes]), 1.0
    )


def test_unit_result_reads_lerobot_eval_info(tmp_path, write_eval_info):
    path = write_eval_info(tmp_path / "eval_info.json", [True, False, True], [3.0, 0.5, 2.0])
    r = UnitResult.from_eval_info(path)
    assert r.successes == (True, False, True) and r.sum_rewards == (3.0, 0.5, 2.0)
    assert r.success_rate == pytest.approx(2 / 3)


def test_a_file_that_is_not_eval_info_is_named_in_the_error(tmp_path):
    path = tmp_path / "eval_info.json"
    path.write_text(json.dumps({"pc_success": 10}))
    with pytest.raises(ValueError, match="not a lerobot-eval eval_info.json"):
        UnitResult.from_eval_info(path)


def test_metaworld_table_pools_groups_per_seed_and_averages_the_groups():
    p = get_protocol("metaworld")
    units = p.units("button-press-v3,reach-v3,basketball-v3", 2, [1000, 2000])
    outcome = {  # (task, seed) -> successes of its 2 trials
        ("button-press-v3", 1000): [True, True], ("reach-v3", 1000): [True, False], ("basketball-v3", 1000): [False, False],
        ("button-press-v3", 2000): [True, False], ("reach-v3", 2000): [False, False], ("basketball-v3", 2000): [True, True],
    }  # fmt: skip
    results = {u.key: result(outcome[(u.labels["task"], u.seed)]) for u in units}
    table = p.table(units, results)
    # seed 1000: easy 3/4 = 75, medium 0, avg 37.5; seed 2000: easy 1/4 = 25, medium 100, avg 62.5.
    assert table.ours["easy"] == pytest.approx(50.0) and table.ours_std["easy"] == pytest.approx(
        35.355, abs=1e-3
    )
    assert table.ours["medium"] == pytest.approx(50.0)
    assert table.ours["avg"] == pytest.approx(50.0)
    assert table.ours["hard"] is None and table.ours["very_hard"] is None
    assert table.episodes == 12
    assert any("Subset: 3 of the 50 tasks" in n for n in table.notes)
    assert [r.values["avg"] for r in table.paper_rows][-1] == 80.6  # Evo-1 Table 1


def test_libero_table_reports_each_suite_and_their_mean():
    p = get_protocol("libero")
    units = p.units("libero_spatial:0-1,libero_10:0", 4, [1000])
    outcome = {
        ("spatial", 0): [True] * 4,
        ("spatial", 1): [True, False, False, False],
        ("long", 0): [False] * 4,
    }
    results = {u.key: result(outcome[(u.labels["suite"], u.labels["task_id"])]) for u in units}
    table = p.table(units, results)
    assert table.ours["spatial"] == pytest.approx(62.5)  # 5 of 8
    assert table.ours["long"] == pytest.approx(0.0)
    assert table.ours["avg"] == pytest.approx(31.25)
    assert table.ours["object"] is None
    assert {r.source for r in table.paper_rows} == {
        "Evo-1 Table 1",
        "VLA-Adapter Table 5",
        "VITA-VLA Table 2",
    }


def test_robotwin_table_has_one_column_per_task_and_setting():
    p = get_protocol("robotwin")
    units = p.units("click_alarmclock", 4, [1000])
    results = {
        u.key: result(
            [True, True, True, False] if u.labels["difficulty"] == "easy" else [True, False, False, False]
        )
        for u in units
    }
    table = p.table(units, results)
    assert [k for k, _ in table.columns] == ["click_alarmclock/easy", "click_alarmclock/hard", "avg"]
    assert table.ours == {"click_alarmclock/easy": 75.0, "click_alarmclock/hard": 25.0, "avg": 50.0}
    evo1 = next(r for r in table.paper_rows if r.model == "Evo-1")
    assert evo1.values["click_alarmclock/hard"] == 58.0 and evo1.values["avg"] == 37.8


def test_calvin_table_turns_chain_lengths_into_success_at_k():
    p = get_protocol("calvin", chains_per_unit=3)
    units = p.units(None, 6, [1000])
    lengths = {0: [5, 2, 0], 3: [1, 1, 3]}  # completed subtasks of chains 0-2 and 3-5 (the summed rewards)
    results = {
        u.key: result([n == 5 for n in lengths[u.env["first_chain"]]], lengths[u.env["first_chain"]])
        for u in units
    }
    table = p.table(units, results)
    # lengths 5,2,0,1,1,3: >=1: 5/6, >=2: 3/6, >=3: 2/6, >=4: 1/6, >=5: 1/6; mean 2.0
    assert [table.ours[str(k)] for k in range(1, 6)] == pytest.approx(
        [500 / 6, 50.0, 200 / 6, 100 / 6, 100 / 6]
    )
    assert table.ours["avg_len"] == pytest.approx(2.0)
    assert {r.source for r in table.paper_rows} == {"VITA-VLA Table 1", "VLA-Adapter Table 6"}


def test_calvin_table_refuses_rewards_that_are_not_chain_lengths():
    p = get_protocol("calvin", chains_per_unit=3)
    units = p.units(None, 3, [1000])
    with pytest.raises(ValueError, match="not a chain length"):
        p.table(units, {units[0].key: result([False] * 3, [0.5, 7.0, 1.0])})


def test_report_files_hold_our_row_and_the_papers_rows(tmp_path):
    p = get_protocol("metaworld")
    units = p.units("easy", 1, [1000])
    table = p.table(units, {u.key: result([i % 2 == 0]) for i, u in enumerate(units)})
    table.ours_label = "evo1 (tiny)"
    paths = write_report(table, tmp_path, {"protocol": "metaworld"})
    md = paths["markdown"].read_text()
    assert "| **evo1 (tiny)** | 50.0 | - | - | - | 50.0 | this run (28 episodes) |" in md
    assert "| Evo-1 | 89.2 | 76.8 | 77.2 | 79.2 | 80.6 | Evo-1 Table 1 |" in md
    rows = list(csv.reader(io.StringIO(paths["csv"].read_text())))
    assert rows[0] == ["model", "source", "Easy", "Medium", "Hard", "Very Hard", "Avg.", "episodes"]
    assert rows[1][:3] == ["evo1 (tiny)", "this run", "50"] and len(rows) == 2 + 5
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(paths["json"].read_text())["ours"]["values"]["easy"] == 50.0
    assert to_markdown(table) == md and to_csv(table) == paths["csv"].read_bytes().decode()
