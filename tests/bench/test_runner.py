"""lerobot-vla-bench's runner: one evaluator process per unit, resume, settings checks, the feature check, presets.

Runner logic is tested with a stand-in evaluator (the ``fake_eval`` fixture writes eval_info.json in
lerobot-eval's format); the real lerobot-eval runs in test_fake_sim_protocols.py and test_metaworld_real.py.
"""

import json

import pytest
from lerobot_vla_tools.bench import ProtocolError, get_protocol
from lerobot_vla_tools.bench.cli import main
from lerobot_vla_tools.bench.runner import BenchConfig, BenchRun, split_passthrough


def bench(protocol, tmp_path, policy, lerobot_eval="lerobot-eval", flags=(), **cfg):
    cfg = BenchConfig(protocol=protocol, output_dir=str(tmp_path / "bench"), lerobot_eval=lerobot_eval, **cfg)
    _, passthrough = split_passthrough([f"--policy.path={policy}", *flags])
    return BenchRun(get_protocol(protocol), cfg, passthrough)


def calls(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_each_unit_is_one_evaluator_run_and_the_table_aggregates_them(
    tmp_path, fake_eval, metaworld_act_checkpoint
):
    command, log = fake_eval
    run = bench(
        "metaworld",
        tmp_path,
        metaworld_act_checkpoint,
        command,
        tasks="reach-v3,basketball-v3",
        trials=4,
        seeds=[1000, 2000],
    )
    summary = run.run(log=lambda *a: None)
    made = calls(log)
    assert len(made) == 4
    assert {(c["env.task"], c["seed"], c["eval.n_episodes"]) for c in made} == {
        ("reach-v3", "1000", "4"), ("basketball-v3", "1000", "4"), ("reach-v3", "2000", "4"), ("basketball-v3", "2000", "4")
    }  # fmt: skip
    assert all(
        c["env.type"] == "metaworld" and c["policy.path"] == str(metaworld_act_checkpoint) for c in made
    )
    # The stand-in succeeds on even episode seeds: 2 of 4 per unit.
    assert summary.table.ours["easy"] == 50.0 and summary.table.ours["medium"] == 50.0
    assert all(p.exists() for p in summary.paths.values())
    assert (tmp_path / "bench" / "units" / "seed1000" / "easy" / "reach-v3" / "unit.json").is_file()


def test_an_interrupted_run_resumes_without_redoing_finished_units(
    tmp_path, fake_eval, metaworld_act_checkpoint, monkeypatch
):
    command, log = fake_eval
    kwargs = {"tasks": "reach-v3,basketball-v3,hammer-v3", "trials": 2, "seeds": [1000]}
    monkeypatch.setenv("FAKE_EVAL_FAIL_TASK", "basketball-v3")  # the 2nd unit crashes
    with pytest.raises(
        RuntimeError, match="(?s)lerobot-eval failed for unit seed1000/medium/basketball-v3.*simulated crash"
    ):
        bench("metaworld", tmp_path, metaworld_act_checkpoint, command, **kwargs).run(log=lambda *a: None)
    assert [c["env.task"] for c in calls(log)] == ["reach-v3", "basketball-v3"]

    monkeypatch.delenv("FAKE_EVAL_FAIL_TASK")
    summary = bench("metaworld", tmp_path, metaworld_act_checkpoint, command, **kwargs).run(
        log=lambda *a: None
    )
    assert [c["env.task"] for c in calls(log)][2:] == ["basketball-v3", "hammer-v3"]  # reach-v3 not redone
    assert summary.reused == ["seed1000/easy/reach-v3"] and summary.ran == [
        "seed1000/medium/basketball-v3",
        "seed1000/medium/hammer-v3",
    ]


def test_report_only_aggregates_the_finished_units_and_says_what_is_missing(
    tmp_path, fake_eval, metaworld_act_checkpoint, monkeypatch
):
    command, log = fake_eval
    monkeypatch.setenv("FAKE_EVAL_FAIL_TASK", "basketball-v3")
    with pytest.raises(RuntimeError):
        bench(
            "metaworld",
            tmp_path,
            metaworld_act_checkpoint,
            command,
            tasks="reach-v3,basketball-v3",
            trials=2,
            seeds=[1000],
        ).run(log=lambda *a: None)
    summary = bench(
        "metaworld",
        tmp_path,
        metaworld_act_checkpoint,
        command,
        tasks="reach-v3,basketball-v3",
        trials=2,
        seeds=[1000],
        report_only=True,
    ).run(log=lambda *a: None)
    assert len(calls(log)) == 2
    assert summary.table.ours["medium"] is None
    assert "Incomplete: 1 of 2 units have not run yet." in summary.table.notes


def test_a_rerun_with_other_settings_is_refused_not_mixed_into_the_table(
    tmp_path, fake_eval, metaworld_act_checkpoint
):
    command, _ = fake_eval
    bench(
        "metaworld", tmp_path, metaworld_act_checkpoint, command, tasks="reach-v3", trials=2, seeds=[1000]
    ).run(log=lambda *a: None)
    with pytest.raises(
        ProtocolError, match=r"other settings \(--eval.n_episodes=2 now --eval.n_episodes=3\)"
    ):
        bench(
            "metaworld", tmp_path, metaworld_act_checkpoint, command, tasks="reach-v3", trials=3, seeds=[1000]
        ).run(log=lambda *a: None)


def test_dry_run_prints_one_lerobot_eval_command_per_unit(tmp_path, metaworld_act_checkpoint):
    lines = []
    bench(
        "metaworld",
        tmp_path,
        metaworld_act_checkpoint,
        tasks="reach",
        trials=10,
        seeds=[0, 1000],
        dry_run=True,
    ).run(log=lines.append)
    commands = [line for line in lines if line.startswith("lerobot-eval ")]
    assert len(commands) == 2
    assert "--env.type=metaworld --env.task=reach-v3 --eval.n_episodes=10 --eval.batch_size=1" in commands[0]
    assert "--seed=0" in commands[0] and "--seed=1000" in commands[1]
    assert not (tmp_path / "bench" / "units").exists()


def test_lerobot_flags_are_passed_through_and_protocol_fields_are_protected(
    tmp_path, metaworld_act_checkpoint
):
    run = bench(
        "metaworld",
        tmp_path,
        metaworld_act_checkpoint,
        flags=["--policy.device=cpu", "--eval.batch_size=2"],
        tasks="reach",
        trials=2,
        seeds=[0],
    )
    args = run.plan()[0].args
    assert "--policy.device=cpu" in args and "--eval.batch_size=2" in args
    with pytest.raises(
        ProtocolError, match="--env.task: the protocol sets these per unit; choose tasks with --tasks"
    ):
        bench("metaworld", tmp_path, metaworld_act_checkpoint, flags=["--env.task=reach-v3"])
    with pytest.raises(ProtocolError, match="use --trials"):
        bench("metaworld", tmp_path, metaworld_act_checkpoint, flags=["--eval.n_episodes=3"])


def test_a_missing_camera_names_the_key_and_the_rename_map_that_fixes_it(tmp_path, make_policy_config):
    ckpt = make_policy_config(
        tmp_path / "ck",
        "act",
        {"observation.images.front": ("VISUAL", (3, 480, 480)), "observation.state": ("STATE", (4,))},
        4,
    )
    run = bench("metaworld", tmp_path, ckpt, tasks="reach", trials=1, seeds=[0])
    with pytest.raises(ProtocolError) as err:
        run.preflight(run.plan())
    message = str(err.value)
    assert "expects input 'observation.images.front'" in message
    assert "--env.type=metaworld (reach-v3) provides observation.image, observation.state" in message
    assert """--rename_map='{"observation.image": "observation.images.front"}'""" in message
    # ...and with that rename map the check passes.
    fixed = bench(
        "metaworld",
        tmp_path,
        ckpt,
        tasks="reach",
        trials=1,
        seeds=[0],
        flags=['--rename_map={"observation.image": "observation.images.front"}'],
    )
    fixed.preflight(fixed.plan())


def test_a_state_of_another_size_is_reported_before_any_episode(tmp_path, make_policy_config):
    ckpt = make_policy_config(
        tmp_path / "ck",
        "act",
        {"observation.image": ("VISUAL", (3, 480, 480)), "observation.state": ("STATE", (8,))},
        4,
    )
    run = bench("metaworld", tmp_path, ckpt, tasks="reach", trials=1, seeds=[0])
    with pytest.raises(
        ProtocolError,
        match=r"observation.state: the act checkpoint was trained with shape \(8,\) but --env.type=metaworld \(reach-v3\) provides \(4,\)",
    ):
        run.preflight(run.plan())


def test_an_action_size_mismatch_is_reported(tmp_path, make_policy_config):
    ckpt = make_policy_config(
        tmp_path / "ck",
        "act",
        {"observation.image": ("VISUAL", (3, 480, 480)), "observation.state": ("STATE", (4,))},
        7,
    )
    run = bench("metaworld", tmp_path, ckpt, tasks="reach", trials=1, seeds=[0])
    with pytest.raises(ProtocolError, match="predicts 7-D actions but --env.type=metaworld"):
        run.preflight(run.plan())


def evo1_libero(
    make_policy_config, path, views=("observation.images.image", "observation.images.image2"), chunk_size=50
):
    inputs = dict.fromkeys(views, ("VISUAL", (3, 448, 448))) | {"observation.state": ("STATE", (8,))}
    return make_policy_config(path, "evo1", inputs, 7, chunk_size=chunk_size)


def test_evo1_checkpoints_get_the_papers_settings_and_user_flags_win(tmp_path, make_policy_config):
    ckpt = evo1_libero(make_policy_config, tmp_path / "ck")
    run = bench(
        "libero",
        tmp_path,
        ckpt,
        tasks="libero_10:0",
        trials=1,
        seeds=[0],
        flags=["--policy.num_inference_timesteps=10"],
    )
    args = run.plan()[0].args
    for flag in ("--policy.n_action_steps=14", "--policy.postprocess_action_dim=7", "--policy.binarize_gripper=true",
                 "--policy.num_inference_timesteps=10", "--env.episode_length=1330", "--env.observation_height=448"):  # fmt: skip
        assert flag in args
    assert "--policy.num_inference_timesteps=50" not in args
    run.preflight(run.plan())  # LIBERO's processed 8-D state and both cameras match


def test_preset_maps_the_benchmark_cameras_onto_differently_named_checkpoint_views(
    tmp_path, make_policy_config
):
    ckpt = evo1_libero(
        make_policy_config,
        tmp_path / "ck",
        views=("observation.images.image_1", "observation.images.image_2"),
    )
    run = bench("libero", tmp_path, ckpt, tasks="libero_goal:0", trials=1, seeds=[0])
    rename = json.loads(next(a for a in run.plan()[0].args if a.startswith("--rename_map=")).split("=", 1)[1])
    assert rename == {
        "observation.images.image": "observation.images.image_1",
        "observation.images.image2": "observation.images.image_2",
    }
    run.preflight(run.plan())


def test_preset_refuses_more_actions_per_query_than_the_checkpoint_predicts(tmp_path, make_policy_config):
    ckpt = evo1_libero(make_policy_config, tmp_path / "ck", chunk_size=8)
    run = bench("libero", tmp_path, ckpt, tasks="libero_goal:0", trials=1, seeds=[0])
    with pytest.raises(
        ProtocolError,
        match=r"executes 14 actions per query but this checkpoint predicts chunks of 8.*--policy.n_action_steps",
    ):
        run.plan()
    assert (
        "--policy.n_action_steps=8"
        in bench(
            "libero",
            tmp_path,
            ckpt,
            tasks="libero_goal:0",
            trials=1,
            seeds=[0],
            flags=["--policy.n_action_steps=8"],
        )
        .plan()[0]
        .args
    )


def test_no_preset_for_other_policies_and_none_on_request(
    tmp_path, metaworld_act_checkpoint, make_policy_config
):
    assert not any(
        "n_action_steps" in a
        for a in bench("metaworld", tmp_path, metaworld_act_checkpoint, tasks="reach", trials=1, seeds=[0])
        .plan()[0]
        .args
    )
    ckpt = make_policy_config(
        tmp_path / "evo",
        "evo1",
        {"observation.image": ("VISUAL", (3, 448, 448)), "observation.state": ("STATE", (4,))},
        4,
        chunk_size=50,
    )
    assert (
        "--policy.n_action_steps=15"
        in bench("metaworld", tmp_path, ckpt, tasks="reach", trials=1, seeds=[0]).plan()[0].args
    )
    plain = (
        bench("metaworld", tmp_path, ckpt, tasks="reach", trials=1, seeds=[0], preset="none").plan()[0].args
    )
    assert not any("n_action_steps" in a for a in plain)
    with pytest.raises(
        ProtocolError, match="--preset=evo1 sets evo1 fields, but the checkpoint is a 'act' policy"
    ):
        bench("metaworld", tmp_path, metaworld_act_checkpoint, preset="evo1")


def test_cli_reports_bad_input_with_exit_code_2(tmp_path, metaworld_act_checkpoint, capsys):
    assert (
        main(["--protocol=mujoco", f"--output_dir={tmp_path}", f"--policy.path={metaworld_act_checkpoint}"])
        == 2
    )
    assert "unknown protocol 'mujoco'" in capsys.readouterr().err
    assert (
        main(
            [
                "--protocol=libero",
                f"--output_dir={tmp_path}",
                f"--policy.path={metaworld_act_checkpoint}",
                "--tasks=libero_100",
            ]
        )
        == 2
    )
    assert "unknown LIBERO suite 'libero_100'" in capsys.readouterr().err
    assert (
        main(["--protocol=metaworld", f"--output_dir={tmp_path}", f"--policy.path={tmp_path / 'nowhere'}"])
        == 2
    )
    assert "--policy.path" in capsys.readouterr().err
    assert main(["--protocol=metaworld", f"--output_dir={tmp_path}"]) == 2
    assert "--policy.path is required" in capsys.readouterr().err
