"""``lerobot-vla-bench --protocol=learning``: stages, resume, refusal of changed settings, the table, the docs block.

The orchestration is tested with stand-in commands (data builder, trainer and evaluator that write what the real
ones write: ``meta/info.json`` + ``build_report.json``, a checkpoint with ``config.json`` and loss log lines,
``eval_info.json``) and recipes whose backbones cost nothing; ``test_learning_real.py`` (slow) runs the real ones.
"""

import json
import sys
import textwrap

import pytest
from lerobot_vla_tools.bench.base import ProtocolError, UnitResult
from lerobot_vla_tools.bench.learning import (
    DOCS_BEGIN,
    DOCS_END,
    LearningConfig,
    LearningRun,
    TaskSuccessProtocol,
    format_cell,
    replace_generated_block,
)
from lerobot_vla_tools.bench.learning_recipes import RECIPES, LearningRecipe, TrainStage

FAKE_DATA = textwrap.dedent(
    '''
    """Stands in for lerobot-vla-data metaworld: writes meta/info.json and build_report.json (seeds 0..n-1)."""
    import json, os, sys
    args = dict(a[2:].split("=", 1) for a in sys.argv[2:])
    with open(os.environ["FAKE_LOG"], "a") as f:
        f.write(json.dumps({"cmd": "data", **args}) + "\\n")
    n, tasks = int(args["episodes_per_task"]), args["tasks"].split(",")
    os.makedirs(os.path.join(args["root"], "meta"), exist_ok=True)
    open(os.path.join(args["root"], "meta", "info.json"), "w").write("{}")
    report = {"episodes": n * len(tasks), "frames": 70 * n * len(tasks),
              "tasks": [{"task": t, "seeds": list(range(int(args["seed"]), int(args["seed"]) + n))} for t in tasks]}
    open(os.path.join(args["root"], "meta", "build_report.json"), "w").write(json.dumps(report))
    '''
)

FAKE_TRAIN = textwrap.dedent(
    '''
    """Stands in for lerobot-train: logs loss lines as lerobot-train does, writes a Meta-World checkpoint config.
    Exits 1 when --output_dir contains $FAKE_TRAIN_FAIL."""
    import json, os, sys
    args = {}
    for a in sys.argv[1:]:
        k, v = a[2:].split("=", 1)
        args[k] = v
    with open(os.environ["FAKE_LOG"], "a") as f:
        f.write(json.dumps({"cmd": "train", **args}) + "\\n")
    if os.environ.get("FAKE_TRAIN_FAIL") and os.environ["FAKE_TRAIN_FAIL"] in args["output_dir"]:
        print("simulated crash")
        sys.exit(1)
    steps, freq = int(args["steps"]), int(args["log_freq"])
    for step in range(freq, steps + 1, freq):
        print(f"INFO ot_train.py:641 step:{step} smpl:8 ep:1 epch:0.1 loss:{1.0 / step:.4f} grdn:1.0 lr:1e-4")
    ckpt = os.path.join(args["output_dir"], "checkpoints", "last", "pretrained_model")
    os.makedirs(ckpt)
    cfg = {"type": args.get("policy.type", "fake"),
           "input_features": {"observation.image": {"type": "VISUAL", "shape": [3, 480, 480]},
                              "observation.state": {"type": "STATE", "shape": [4]}},
           "output_features": {"action": {"type": "ACTION", "shape": [4]}}}
    open(os.path.join(ckpt, "config.json"), "w").write(json.dumps(cfg))
    '''
)

TASKS = "button-press-topdown-v3,reach-v3"
ONE_TASK = "reach-v3"  # where the number of tasks does not matter: fewer stand-in processes


def _quick(scratch):
    (scratch / "weights").write_text("tiny")
    return ["--policy.type=act", f"--policy.vlm={scratch / 'weights'}"]


#: two plain recipes and one with a teacher stage taken from another recipe, as vita_vla takes seer's
FAKE_RECIPES = {
    "alpha": LearningRecipe("alpha", _quick, source="test"),
    "teacher": LearningRecipe("teacher", _quick, source="test"),
    "student": LearningRecipe(
        "student",
        _quick,
        stages=(
            TrainStage("align", flags=("--policy.stage=align",), share=0.25, teacher="teacher/train"),
            TrainStage("finetune", flags=("--policy.stage=finetune",), init_from="align"),
        ),
        source="test",
    ),
}


@pytest.fixture
def fakes(tmp_path, monkeypatch, fake_eval):
    eval_cmd, eval_log = fake_eval
    log = tmp_path / "fake_calls.jsonl"
    log.touch()
    monkeypatch.setenv("FAKE_LOG", str(log))
    (tmp_path / "fake_data.py").write_text(FAKE_DATA)
    (tmp_path / "fake_train.py").write_text(FAKE_TRAIN)
    commands = {
        "lerobot_vla_data": f"{sys.executable} {tmp_path / 'fake_data.py'}",
        "lerobot_train": f"{sys.executable} {tmp_path / 'fake_train.py'}",
        "lerobot_eval": eval_cmd,
    }

    def calls(kind=None):
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        if kind == "eval":
            return [json.loads(line) for line in eval_log.read_text().splitlines()]
        return [r for r in rows if kind is None or r["cmd"] == kind]

    return commands, calls


def learning(tmp_path, fakes, recipes=FAKE_RECIPES, **fields):
    commands, _ = fakes
    defaults = {"tasks": ONE_TASK, "demos_per_task": 2, "steps": 40, "batch_size": 2, "eval_episodes": 3}
    cfg = LearningConfig(output_dir=str(tmp_path / "out"), **commands, **{**defaults, **fields})
    return LearningRun(cfg, recipes=recipes, log=lambda *a: None)


def test_one_dataset_one_checkpoint_per_policy_and_one_eval_run_per_task(tmp_path, fakes):
    _, calls = fakes
    report = learning(tmp_path, fakes, tasks=TASKS).run()
    (data,) = calls("data")
    assert (data["tasks"], data["episodes_per_task"]) == (TASKS, "2")
    trains = calls("train")
    # teacher trains once, before the student's align stage that reads its checkpoint
    assert [t["output_dir"].split("/out/")[1] for t in trains] == [
        "alpha/train", "teacher/train", "student/align", "student/finetune",
    ]  # fmt: skip
    assert {t["steps"] for t in trains[:2]} == {"40"} and [t["steps"] for t in trains[2:]] == ["10", "30"]
    assert all(t["batch_size"] == "2" and t["dataset.repo_id"] == "local/vla-learning" for t in trains)
    assert trains[2]["policy.teacher_path"].endswith("out/teacher/train/checkpoints/last/pretrained_model")
    assert trains[3]["policy.path"].endswith("out/student/align/checkpoints/last/pretrained_model")
    assert "policy.type" not in trains[3]  # stage 2 starts from the stage-1 checkpoint
    evals = calls("eval")
    assert len(evals) == 3 * 2  # 3 policies x 2 tasks
    assert {(e["env.task"], e["eval.n_episodes"], e["seed"]) for e in evals} == {
        ("button-press-topdown-v3", "3", "10000"), ("reach-v3", "3", "10000"),
    }  # fmt: skip
    assert [r["status"] for r in report["rows"]] == ["done"] * 3


def test_a_rerun_runs_nothing_again_and_reports_the_same(tmp_path, fakes):
    _, calls = fakes
    first = learning(tmp_path, fakes).run()
    n_calls = (len(calls("data")), len(calls("train")), len(calls("eval")))
    second = learning(tmp_path, fakes).run()
    assert (len(calls("data")), len(calls("train")), len(calls("eval"))) == n_calls
    assert second["rows"] == first["rows"]


def test_a_crash_keeps_what_finished_and_the_rerun_does_only_the_rest(tmp_path, fakes, monkeypatch):
    _, calls = fakes
    monkeypatch.setenv("FAKE_TRAIN_FAIL", "student/finetune")
    with pytest.raises(RuntimeError, match="1 policies failed: student"):
        learning(tmp_path, fakes).run()
    out = tmp_path / "out"
    assert (out / "student" / "align.json").is_file() and not (out / "student" / "finetune.json").exists()
    assert "alpha" in (out / "table.md").read_text()  # the other policies were reported
    monkeypatch.delenv("FAKE_TRAIN_FAIL")
    before = len(calls("train"))
    learning(tmp_path, fakes).run()
    rerun = calls("train")[before:]
    assert [t["output_dir"].split("/out/")[1] for t in rerun] == ["student/finetune"]


def test_running_in_pieces_fills_one_table(tmp_path, fakes):
    _, calls = fakes
    piece = learning(tmp_path, fakes, policies="alpha").run()
    assert [r["status"] for r in piece["rows"]] == ["done", "not run", "not run"]
    assert "Not finished yet: teacher, student" in (tmp_path / "out" / "table.md").read_text()
    rest = learning(
        tmp_path, fakes, policies="student"
    ).run()  # trains its teacher first, evaluates the student
    # the teacher trained (for the student) but was not evaluated: it shows as incomplete
    assert [r["status"] for r in rest["rows"]] == ["done", "incomplete", "done"]
    assert len(calls("data")) == 1
    student = rest["rows"][2]
    assert (
        student["prerequisite_s"] > 0 and student["total_s"] >= student["train_s"] + student["prerequisite_s"]
    )


def test_a_finished_stage_with_other_settings_is_refused(tmp_path, fakes):
    learning(tmp_path, fakes, policies="alpha").run()
    with pytest.raises(
        ProtocolError,
        match=r"stage alpha/train finished with other settings \(args: --steps=40 now --steps=50",
    ):
        learning(tmp_path, fakes, policies="alpha", steps=50).run()


def test_an_unfinished_policy_row_says_what_is_missing(tmp_path, fakes, monkeypatch):
    """A table written while pieces still run is committed too: no partial row may read as a result."""
    monkeypatch.setenv("FAKE_TRAIN_FAIL", "student/finetune")
    with pytest.raises(RuntimeError, match="student"):
        learning(tmp_path, fakes, tasks=TASKS).run()
    table = (tmp_path / "out" / "table.md").read_text()
    # the student's align stage finished, its finetune did not: no rate, the missing stage named
    assert (
        "| student | not yet | not yet | not evaluated yet | 10 align x 2; finetune not finished | - |"
        in table
    )
    # the teacher was trained and evaluated on both tasks: an ordinary row
    assert (
        "| teacher | 2/3 = 67 % [21, 94] | 2/3 = 67 % [21, 94] | **4/6 = 67 % [30, 90]** | 40 x 2 |" in table
    )
    monkeypatch.delenv("FAKE_TRAIN_FAIL")
    run = learning(tmp_path, fakes, tasks=TASKS)
    run.run()
    # one of two tasks evaluated (its other unit's record gone, as while that unit runs): pooled over what ran
    (run.unit_dir("alpha", "reach-v3") / "unit.json").unlink()
    report = learning(tmp_path, fakes, tasks=TASKS, report_only=True).run()
    assert report["rows"][0]["status"] == "incomplete"
    table = (tmp_path / "out" / "table.md").read_text()
    assert (
        "| alpha | 2/3 = 67 % [21, 94] | not yet | **2/3 = 67 % [21, 94]** (1 of 2 tasks so far) | 40 x 2 |"
        in table
    )
    assert "Not finished yet: alpha" in table


def test_report_only_runs_nothing(tmp_path, fakes):
    _, calls = fakes
    with pytest.raises(ProtocolError, match="nothing has finished"):
        learning(tmp_path, fakes, report_only=True).run()
    learning(tmp_path, fakes, policies="alpha").run()
    n = len(calls())
    report = learning(tmp_path, fakes, report_only=True).run()
    assert len(calls()) == n and [r["status"] for r in report["rows"]] == ["done", "not run", "not run"]


def test_evaluation_seeds_must_not_be_demonstration_seeds(tmp_path, fakes):
    with pytest.raises(ProtocolError, match="--eval_seed=1: evaluation seeds 1..1 were used to record"):
        learning(tmp_path, fakes, eval_seed=1).run()


def test_bad_selections_are_refused_before_anything_runs(tmp_path, fakes):
    with pytest.raises(ProtocolError, match="--policies: no learning recipe for pi0"):
        learning(tmp_path, fakes, policies="alpha,pi0")
    with pytest.raises(ProtocolError, match="unknown Meta-World task"):
        learning(tmp_path, fakes, tasks="button-press-topdown-v3,nope")
    with pytest.raises(ProtocolError, match="--eval_episodes must be >= 1"):
        learning(tmp_path, fakes, eval_episodes=0)
    with pytest.raises(ProtocolError, match="--steps=1 leaves a student stage with no step"):
        learning(tmp_path, fakes, steps=1)


def test_the_table_has_a_wilson_interval_per_task_and_policy_and_the_times(tmp_path, fakes):
    report = learning(tmp_path, fakes, policies="alpha", tasks=TASKS).run()
    alpha = report["rows"][0]
    # the stand-in evaluator succeeds iff (seed + episode) is even: seeds 10000..10002 -> 2 of 3 per task
    assert alpha["cells"]["reach-v3"] == {
        "successes": 2, "episodes": 3, "rate": 2 / 3, "low": pytest.approx(0.2077, abs=1e-4),
        "high": pytest.approx(0.9385, abs=1e-4),
    }  # fmt: skip
    assert alpha["all"]["successes"] == 4 and alpha["all"]["episodes"] == 6
    table = (tmp_path / "out" / "table.md").read_text()
    assert (
        "| alpha | 2/3 = 67 % [21, 94] | 2/3 = 67 % [21, 94] | **4/6 = 67 % [30, 90]** | 40 x 2 | 0.025 |"
        in table
    )
    assert "**Smoke run**: 3 episode(s) per task" in table
    assert alpha["last_loss"] == pytest.approx(1 / 40)
    assert alpha["train_s"] > 0 and alpha["eval_s"] > 0
    csv = (tmp_path / "out" / "table.csv").read_text().splitlines()
    assert csv[0].startswith("policy,task,successes,episodes,success_rate,wilson_low,wilson_high")
    assert csv[1].startswith("alpha,button-press-topdown-v3,2,3,0.6667,0.2077,0.9385")
    assert (tmp_path / "out" / "loss_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_cells_read_successes_rate_and_interval():
    assert format_cell(17, 20) == "17/20 = 85 % [64, 95]"
    assert format_cell(0, 20) == "0/20 = 0 % [0, 16]"


def test_the_per_checkpoint_protocol_pools_episodes_per_task():
    protocol = TaskSuccessProtocol()
    units = protocol.units(TASKS, trials=2, seeds=[10000])
    assert [u.key for u in units] == ["seed10000/button-press-topdown-v3", "seed10000/reach-v3"]
    results = {units[0].key: UnitResult((True, False), (1.0, 0.0), 1.0)}
    table = protocol.table(units, results)
    assert table.ours == {"button-press-topdown-v3": 50.0, "reach-v3": None}
    assert table.notes == ["button-press-topdown-v3: 1/2, 95 % Wilson interval [9.5, 90.5]"]


def test_the_docs_block_is_regenerated_between_its_markers(tmp_path, fakes):
    doc = tmp_path / "learning.md"
    doc.write_text(f"# Title\n\nbefore\n{DOCS_BEGIN}\nold table\n{DOCS_END}\nafter\n")
    image = tmp_path / "img" / "curves.png"
    learning(
        tmp_path, fakes, policies="alpha", tasks=TASKS, update_docs=str(doc), docs_image=str(image)
    ).run()
    text = doc.read_text()
    assert text.startswith("# Title\n\nbefore\n" + DOCS_BEGIN) and text.endswith(DOCS_END + "\nafter\n")
    assert "old table" not in text and "| alpha | 2/3 = 67 %" in text
    assert (
        "![learning protocol: loss curves](img/curves.png)" in text and image.read_bytes()[:4] == b"\x89PNG"
    )
    assert "Generated by `lerobot-vla-bench --protocol=learning" in text


def test_a_docs_file_without_markers_is_refused():
    with pytest.raises(ProtocolError, match="has no generated block; add the two lines"):
        replace_generated_block("# no markers\n", "table", "README.md")


def test_vita_vla_splits_the_step_budget_and_uses_the_seer_teacher():
    vita = RECIPES["vita_vla"]
    assert vita.stage_steps(3000) == {"align": 600, "finetune": 2400}  # 20 % + 80 % = the same 3000 steps
    assert vita.requires() == ["seer"]
    assert all(RECIPES[p].stage_steps(3000) == {"train": 3000} for p in RECIPES if p != "vita_vla")
    assert list(RECIPES) == ["vla_adapter", "a1", "seer", "vita_vla", "evo1", "smolvla"]


def test_the_cli_dispatches_the_learning_protocol(tmp_path, capsys):
    from lerobot_vla_tools.bench.cli import main

    assert main(["--protocol=learning", f"--output_dir={tmp_path}", "--policies=nope"]) == 2
    assert "--policies: no learning recipe for nope" in capsys.readouterr().err


def test_an_archive_carries_evaluated_policies_to_another_run(tmp_path, fakes):
    """--archive: a policy evaluated in one output directory (one machine, one session) counts as done in another
    (no checkpoint, no dataset carried), is neither trained nor evaluated again, and fills the same table."""
    _, calls = fakes
    archive = tmp_path / "records"
    first = learning(tmp_path, fakes, policies="alpha", tasks=TASKS, archive=str(archive)).run()
    kept = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file())
    assert kept == [
        "alpha/backbone.json", "alpha/eval/units/seed10000/button-press-topdown-v3/eval_info.json",
        "alpha/eval/units/seed10000/button-press-topdown-v3/unit.json",
        "alpha/eval/units/seed10000/reach-v3/eval_info.json", "alpha/eval/units/seed10000/reach-v3/unit.json",
        "alpha/train.json", "data.json",
    ]  # fmt: skip
    text = "".join(p.read_text() for p in archive.rglob("*.json"))
    assert str(tmp_path / "out") not in text and "${output_dir}/alpha/backbone" in text

    elsewhere = tmp_path / "second"
    elsewhere.mkdir()
    n_train, n_eval = len(calls("train")), len(calls("eval"))
    second = learning(elsewhere, fakes, policies="alpha,teacher", tasks=TASKS, archive=str(archive)).run()
    trained = [t["output_dir"] for t in calls("train")[n_train:]]
    assert trained == [str(elsewhere / "out" / "teacher" / "train")]  # alpha came from the archive
    assert len(calls("eval")) - n_eval == 2  # the teacher's two tasks only
    assert [r["status"] for r in second["rows"]] == ["done", "done", "not run"]
    assert second["rows"][0]["cells"] == first["rows"][0]["cells"]
    assert second["rows"][0]["train_s"] == first["rows"][0]["train_s"]
    assert (archive / "teacher" / "train.json").is_file()  # kept as well, for the next piece

    with pytest.raises(
        ProtocolError, match=r"stage alpha/train finished with other settings \(args: --steps=40"
    ):
        learning(
            tmp_path / "third", fakes, policies="alpha", tasks=TASKS, steps=50, archive=str(archive)
        ).run()
    report = learning(tmp_path / "fourth", fakes, tasks=TASKS, archive=str(archive), report_only=True).run()
    assert [r["status"] for r in report["rows"]] == ["done", "done", "not run"]
