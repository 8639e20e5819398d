"""The command line as a user meets it: ``--help`` of every type and command of ours, and bad flags whose message
reaches the terminal.

The LeRobot commands are called in-process through their real entry points (``lerobot.scripts.lerobot_train.main``
and friends) with a patched ``sys.argv``: the same path as the installed ``lerobot-train`` script (plugin
registration, ``parser.wrap``, draccus' decoding, the ``error: ...`` line and exit status 1), without the ~10 s of a
fresh interpreter per call. draccus replaces the message of a ``ValueError`` raised while it builds a config with
"Couldn't instantiate class ... using the given arguments"; the ``ConfigError`` of ``lerobot_vla_plugins.errors``
gets through, and these tests check that its text does, at the layer the user sees.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from lerobot.configs.policies import PreTrainedConfig
from lerobot.envs.configs import EnvConfig
from lerobot.robots.config import RobotConfig
from lerobot.scripts import lerobot_calibrate, lerobot_eval, lerobot_train
from lerobot.utils.import_utils import register_third_party_plugins

REPO = Path(__file__).resolve().parents[1]

register_third_party_plugins()


def _ours(registry) -> list[str]:
    """The types of a LeRobot choice registry that our plugins register (their modules are not LeRobot's)."""
    return sorted(
        name
        for name, cls in registry.get_known_choices().items()
        if cls.__module__.split(".")[0] != "lerobot"
    )


POLICY_TYPES = _ours(PreTrainedConfig)
ENV_TYPES = _ours(EnvConfig)
ROBOT_TYPES = _ours(RobotConfig)


def run_main(main, argv: list[str], capsys) -> tuple[int, str, str]:
    """Call a command's entry point with ``argv`` as its command line; (exit status, stdout, stderr)."""
    old = sys.argv
    sys.argv = argv
    try:
        result = main()  # our argparse commands return their status, LeRobot's and draccus' exit
        code = result if isinstance(result, int) else 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


def test_our_types_are_discovered():
    # The parametrisations below run over these; an empty list would make them vacuous.
    assert set(POLICY_TYPES) == {"a1", "seer", "vita_vla", "vla_adapter"}
    assert set(ENV_TYPES) >= {"calvin", "robotwin_randomized"}
    assert len(ROBOT_TYPES) >= 4


# ------------------------------------------------------------------ --help


def _own_field(config_cls, base) -> str:
    """A field of ``config_cls`` that its LeRobot registry ``base`` does not have (so its help is ours)."""
    own = [name for name in config_cls.__dataclass_fields__ if name not in base.__dataclass_fields__]
    assert own, f"{config_cls.__name__} declares no field of its own"
    return own[0]


@pytest.mark.parametrize("command", ["lerobot-train", "lerobot-eval"])
@pytest.mark.parametrize("policy_type", POLICY_TYPES)
def test_help_of_every_policy_type(policy_type, command, capsys):
    main = {"lerobot-train": lerobot_train.main, "lerobot-eval": lerobot_eval.main}[command]
    code, out, err = run_main(main, [command, f"--policy.type={policy_type}", "--help"], capsys)
    assert code == 0, err
    field = _own_field(PreTrainedConfig.get_choice_class(policy_type), PreTrainedConfig)
    assert f"--policy.{field}" in out


@pytest.mark.parametrize("env_type", ENV_TYPES)
def test_help_of_every_env_type(env_type, capsys):
    code, out, err = run_main(lerobot_eval.main, ["lerobot-eval", f"--env.type={env_type}", "--help"], capsys)
    assert code == 0, err
    assert "--env.task" in out


@pytest.mark.parametrize("robot_type", ROBOT_TYPES)
def test_help_of_every_robot_type(robot_type, capsys):
    code, out, err = run_main(
        lerobot_calibrate.main, ["lerobot-calibrate", f"--robot.type={robot_type}", "--help"], capsys
    )
    assert code == 0, err
    field = _own_field(RobotConfig.get_choice_class(robot_type), RobotConfig)
    assert f"--robot.{field}" in out


def our_commands() -> dict[str, str]:
    """Every console script of every distribution of the workspace: name -> ``module:function``."""
    commands = {}
    for pyproject in sorted(REPO.glob("**/pyproject.toml")):
        if ".venv" in pyproject.parts:
            continue
        commands.update(tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {}))
    return commands


COMMANDS = our_commands()


def test_every_command_is_collected():
    assert {
        "lerobot-vla-demo",
        "lerobot-vla-bench",
        "lerobot-vla-adapter-convert",
        "lerobot-a1-convert",
    } <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_of_every_command_of_ours(name, capsys):
    module, _, function = COMMANDS[name].partition(":")
    main = getattr(importlib.import_module(module), function)
    code, out, err = run_main(main, [name, "--help"], capsys)
    assert code == 0, err
    assert "usage:" in out.lower(), out[:500]


# ------------------------------------------------------------------ bad flags reach the terminal

# One bad value per policy type (a choice field of its own) and the text the user must see.
BAD_POLICY_FLAGS = {
    "vla_adapter": ("--policy.head=bogus", "vla_adapter: head='bogus' is not one of ['l1', 'dit']"),
    "a1": ("--policy.head=diffusion", "a1: head='diffusion' is not one of ['flow_matching', 'mlp']"),
    "seer": ("--policy.size=huge", "seer: size='huge' is unknown; choose one of ['base', 'large']"),
    "vita_vla": ("--policy.stage=stage3", "vita_vla: stage='stage3' does not exist; choose one of"),
}


def test_every_policy_type_has_a_bad_flag_case():
    assert set(BAD_POLICY_FLAGS) == set(POLICY_TYPES)


@pytest.mark.parametrize("command", ["lerobot-train", "lerobot-eval"])
@pytest.mark.parametrize("policy_type", POLICY_TYPES)
def test_a_bad_policy_flag_names_the_field_on_the_command_line(policy_type, command, capsys):
    flag, message = BAD_POLICY_FLAGS[policy_type]
    if command == "lerobot-train":
        main, rest = lerobot_train.main, ["--dataset.repo_id=user/data"]
    else:
        main, rest = lerobot_eval.main, ["--env.type=metaworld"]
    code, _, err = run_main(main, [command, f"--policy.type={policy_type}", flag, *rest], capsys)
    assert code == 1
    assert message in err
    assert "Couldn't instantiate" not in err


@pytest.mark.parametrize("policy_type", POLICY_TYPES)
def test_a_bad_compile_mode_names_the_field_on_the_command_line(policy_type, capsys):
    argv = [
        "lerobot-train",
        f"--policy.type={policy_type}",
        "--policy.compile_mode=fast",
        "--dataset.repo_id=u/d",
    ]
    code, _, err = run_main(lerobot_train.main, argv, capsys)
    assert code == 1
    assert f"{policy_type}: compile_mode='fast' is not one of" in err


def test_a_bad_env_flag_names_the_field_on_the_command_line(capsys):
    argv = ["lerobot-eval", "--policy.type=seer", "--env.type=calvin", "--env.task=AB_C"]
    code, _, err = run_main(lerobot_eval.main, argv, capsys)
    assert code == 1
    assert "calvin: --env.task must be one of" in err


def _post_init_raises(cls) -> list[str]:
    """Names of the exceptions ``raise X(...)`` in ``cls.__post_init__`` and the methods of ``cls`` it calls."""
    source = textwrap.dedent(inspect.getsource(cls))
    methods = {
        node.name: node for node in ast.parse(source).body[0].body if isinstance(node, ast.FunctionDef)
    }
    todo, seen, raised = ["__post_init__"], set(), []
    while todo:
        name = todo.pop()
        if name in seen or name not in methods:
            continue
        seen.add(name)
        for node in ast.walk(methods[name]):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                raised.append(ast.unparse(node.exc.func))
            func = node.func if isinstance(node, ast.Call) else None
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "self"
            ):
                todo.append(func.attr)
    return raised


@pytest.mark.parametrize(
    "config_cls",
    [PreTrainedConfig.get_choice_class(t) for t in POLICY_TYPES]
    + [EnvConfig.get_choice_class(t) for t in ENV_TYPES if t in ("calvin", "robotwin_randomized")],
    ids=lambda c: c.__name__,
)
def test_configs_raise_only_errors_that_reach_the_terminal(config_cls):
    # A ValueError/TypeError raised while draccus builds the config loses its text (see the module docstring).
    raised = _post_init_raises(config_cls)
    assert not [r for r in raised if r in ("ValueError", "TypeError")], raised


def test_lerobot_a1_calibrate_names_the_missing_checkpoint(capsys):
    from lerobot_policy_a1.calibrate_a1 import main

    code, _, err = run_main(main, ["lerobot-a1-calibrate", "--dataset.repo_id=u/d"], capsys)
    assert code == 1
    assert "lerobot-a1-calibrate: pass --policy.path=<A1 checkpoint directory or Hub id>" in err
