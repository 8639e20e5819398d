"""What each paper protocol runs: its units (one lerobot-eval run each) and its input errors."""

import pytest
from lerobot_vla_tools.bench import ProtocolError, get_protocol
from lerobot_vla_tools.bench.base import check_trials_and_seeds
from lerobot_vla_tools.bench.libero import parse_libero_tasks
from lerobot_vla_tools.bench.robotwin import parse_robotwin_tasks


def test_metaworld_default_is_evo1s_50_tasks_10_trials_5_seeds():
    p = get_protocol("metaworld")
    units = p.units(None, p.default_trials, list(p.default_seeds))
    assert len(units) == 50 * 5
    assert {u.n_episodes for u in units} == {10}
    assert {u.labels["group"] for u in units} == {"easy", "medium", "hard", "very_hard"}
    assert sum(u.labels["group"] == "easy" for u in units) == 28 * 5
    u = units[0]
    assert u.env == {"type": "metaworld", "task": "button-press-topdown-v3"} and u.seed == 1000


def test_metaworld_subset_by_group_and_task():
    units = get_protocol("metaworld").units("very_hard,reach", 2, [0])
    assert [u.labels["task"] for u in units] == [
        "disassemble-v3", "pick-place-wall-v3", "shelf-place-v3", "stick-pull-v3", "stick-push-v3", "reach-v3"
    ]  # fmt: skip


def test_unknown_metaworld_task_lists_the_valid_names():
    with pytest.raises(
        ProtocolError, match=r"--tasks: unknown Meta-World task or group 'push-the-button'.*button-press-v3"
    ):
        get_protocol("metaworld").units("push-the-button", 10, [0])


def test_unknown_protocol_lists_the_protocols():
    with pytest.raises(
        ProtocolError, match="unknown protocol 'mujoco'; choose one of metaworld, libero, robotwin, calvin"
    ):
        get_protocol("mujoco")


def test_libero_default_is_four_suites_of_ten_tasks_with_50_trials():
    p = get_protocol("libero")
    units = p.units(None, p.default_trials, list(p.default_seeds))
    assert len(units) == 40 and {u.n_episodes for u in units} == {50}
    assert units[0].env == {"type": "libero", "task": "libero_spatial", "task_ids": [0]}
    assert units[0].preset_suite == "libero_spatial"
    assert units[-1].env == {"type": "libero", "task": "libero_10", "task_ids": [9]}


def test_libero_task_selection_accepts_suites_ids_and_ranges():
    assert parse_libero_tasks("libero_goal:0-2,5,long") == [("goal", [0, 1, 2, 5]), ("long", list(range(10)))]
    assert parse_libero_tasks("spatial:3") == [("spatial", [3])]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("libero_100", "unknown LIBERO suite 'libero_100'"),
        ("libero_goal:12", "task id 12 out of range 0..9"),
        ("libero_goal:one", "integers or ranges like 0-4"),
        ("3", "before a suite name"),
    ],
)
def test_bad_libero_selections_say_what_is_valid(spec, match):
    with pytest.raises(ProtocolError, match=match):
        parse_libero_tasks(spec)


def test_robotwin_default_is_evo1s_four_tasks_easy_and_hard():
    p = get_protocol("robotwin")
    units = p.units(None, p.default_trials, list(p.default_seeds))
    assert len(units) == 8 and {u.n_episodes for u in units} == {100}
    assert {(u.labels["task"], u.labels["difficulty"]) for u in units} >= {
        ("click_alarmclock", "hard"),
        ("place_can_basket", "easy"),
    }
    hard = next(u for u in units if u.labels["difficulty"] == "hard")
    assert hard.env["type"] == "robotwin_randomized"
    easy = next(u for u in units if u.labels["difficulty"] == "easy")
    assert easy.env["type"] == "robotwin"  # LeRobot's own env for the clean setting


def test_robotwin_selection_by_setting_and_task():
    assert parse_robotwin_tasks("hard") == [
        (t, "hard") for t in ("click_alarmclock", "dump_bin_bigbin", "place_bread_basket", "place_can_basket")
    ]
    assert parse_robotwin_tasks("beat_block_hammer:easy") == [("beat_block_hammer", "easy")]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("click_the_clock", "unknown RoboTwin task 'click_the_clock'"),
        ("click_alarmclock:medium", "easy or hard"),
    ],
)
def test_bad_robotwin_selections_say_what_is_valid(spec, match):
    with pytest.raises(ProtocolError, match=match):
        parse_robotwin_tasks(spec)


def test_calvin_runs_the_1000_chains_in_blocks():
    units = get_protocol("calvin", chains_per_unit=300).units(None, 1000, [1000])
    assert [(u.env["first_chain"], u.n_episodes) for u in units] == [
        (0, 300),
        (300, 300),
        (600, 300),
        (900, 100),
    ]
    assert units[0].env == {"type": "calvin", "task": "ABC_D", "first_chain": 0}


@pytest.mark.parametrize(
    ("tasks", "trials", "match"),
    [("ABC", 10, "one of ABC_D, ABCD_D, D_D"), (None, 1001, "1000 evaluation chains")],
)
def test_bad_calvin_input_says_what_is_valid(tasks, trials, match):
    with pytest.raises(ProtocolError, match=match):
        get_protocol("calvin").units(tasks, trials, [0])


def test_seeds_whose_episodes_overlap_are_refused():
    # Run s uses episode seeds s..s+9; 1000 and 1005 would repeat episodes 1005-1009.
    with pytest.raises(ProtocolError, match="would share episodes"):
        check_trials_and_seeds(10, [1000, 1005])
    with pytest.raises(ProtocolError, match="repeated seed"):
        check_trials_and_seeds(10, [1000, 1000])
    check_trials_and_seeds(10, [1000, 1010])
