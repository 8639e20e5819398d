"""Every plugin of the workspace is discovered by LeRobot, registers what it declares, and collides with nothing."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PREFIXES = ("lerobot_policy_", "lerobot_env_", "lerobot_robot_", "lerobot_teleoperator_", "lerobot_camera_")

# Registries of LeRobot's choice types, keyed by the base-class name used in register_subclass calls.
_PROBE = r"""
import io, json, logging
stream = io.StringIO()
logging.basicConfig(level=logging.INFO, stream=stream, force=True)
# Import what the lerobot-* commands import before they call register_third_party_plugins(): all built-ins.
import lerobot.scripts.lerobot_train, lerobot.scripts.lerobot_eval, lerobot.scripts.lerobot_record, lerobot.scripts.lerobot_rollout
from lerobot.configs.policies import PreTrainedConfig
from lerobot.envs.configs import EnvConfig
from lerobot.robots.config import RobotConfig
from lerobot.teleoperators.config import TeleoperatorConfig
from lerobot.cameras.configs import CameraConfig
from lerobot.optim.optimizers import OptimizerConfig
from lerobot.optim.schedulers import LRSchedulerConfig
regs = {"PreTrainedConfig": PreTrainedConfig, "EnvConfig": EnvConfig, "RobotConfig": RobotConfig,
        "TeleoperatorConfig": TeleoperatorConfig, "CameraConfig": CameraConfig,
        "OptimizerConfig": OptimizerConfig, "LRSchedulerConfig": LRSchedulerConfig}
snap = lambda: {k: sorted(r.get_known_choices()) for k, r in regs.items()}
builtin = snap()
import lerobot_vla_plugins, lerobot_vla_plugins.backbones, lerobot_vla_tools.data, lerobot_vla_plugins.presets
core = snap()
from lerobot.utils.import_utils import register_third_party_plugins
register_third_party_plugins()
print(json.dumps({"builtin": builtin, "core": core, "after": snap(), "log": stream.getvalue()}))
"""


def workspace_plugins() -> dict[str, Path]:
    """Plugin distributions of the workspace: name -> package directory (policies/*, envs/*, robots/*)."""
    out = {}
    for kind in ("policies", "envs", "robots"):
        for pyproject in sorted((REPO / kind).glob("*/pyproject.toml")):
            name = tomllib.loads(pyproject.read_text())["project"]["name"]
            out[name] = pyproject.parent
    return out


def declared_types(package_dir: Path) -> set[tuple[str, str]]:
    """(registry, type name) pairs from every ``X.register_subclass("name")`` call in the package's sources."""
    found = set()
    for path in package_dir.rglob("*.py"):
        if "tests" in path.relative_to(package_dir).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "register_subclass"
                and isinstance(node.func.value, ast.Name)
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add((node.func.value.id, node.args[0].value))
    return found


@pytest.fixture(scope="module")
def probe() -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=600, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_distribution_names_use_underscores_and_match_their_import_package():
    for name, pkg_dir in workspace_plugins().items():
        assert name.startswith(PREFIXES), f"{name}: LeRobot only discovers {PREFIXES}"
        assert "-" not in name, f"{name}: a hyphenated distribution name is silently ignored by LeRobot"
        assert pkg_dir.name == name, f"{pkg_dir}: folder should be named after its distribution {name}"
        assert (pkg_dir / "src" / name / "__init__.py").is_file(), (
            f"{name}: import package src/{name}/ missing"
        )


def test_every_workspace_plugin_is_installed_in_the_environment():
    from importlib.metadata import PackageNotFoundError, distribution

    for name in workspace_plugins():
        try:
            assert distribution(name).metadata["Name"] == name  # raw metadata name, as LeRobot reads it
        except PackageNotFoundError:  # pragma: no cover - a failure message, not a branch
            pytest.fail(f"{name} is not installed: run ./scripts/bootstrap.sh")


def test_the_shared_core_registers_nothing(probe):
    assert probe["core"] == probe["builtin"]


def test_discovery_logs_no_error(probe):
    assert "Could not import third-party plugin" not in probe["log"], probe["log"][-3000:]
    assert "ERROR" not in probe["log"], probe["log"][-3000:]
    for name in workspace_plugins():
        assert f"Imported third-party plugin: {name}" in probe["log"]


def test_every_declared_type_is_registered_and_none_is_a_builtin(probe):
    for name, pkg_dir in workspace_plugins().items():
        declared = declared_types(pkg_dir)
        assert declared, f"{name} registers no type"
        for registry, type_name in declared:
            assert registry in probe["after"], f"{name}: unknown registry {registry}"
            assert type_name not in probe["builtin"][registry], (
                f"{name} re-registers LeRobot's built-in {registry} '{type_name}'"
            )
            assert type_name in probe["after"][registry], (
                f"{name}: {registry} '{type_name}' is not registered after discovery"
            )


def test_no_two_plugins_declare_the_same_type():
    seen: dict[tuple[str, str], str] = {}
    for name, pkg_dir in workspace_plugins().items():
        for key in declared_types(pkg_dir):
            assert key not in seen, f"{key} declared by both {seen[key]} and {name}"
            seen[key] = name


# Documents outside the repo that comments and docs once cited (design notes of the workplace, a deleted page).
_OUTSIDE = re.compile(r"shared/(design|papers)|reference[ ]notes|\breference [A-Z][0-9]\b|\bdocs/robots\.md")
_MD_LINK = re.compile(r"\]\(([^)#\s]+\.md)(#[^)]*)?\)")


def test_no_reference_to_a_document_that_is_not_in_the_repo():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    stale = []
    for rel in tracked.split():
        path = REPO / rel
        if path.suffix not in (".py", ".md", ".sh", ".toml", ".yaml") or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        stale += [f"{rel}: {m.group(0)}" for m in _OUTSIDE.finditer(text)]
        if path.suffix == ".md":  # markdown links to other pages must resolve
            stale += [
                f"{rel}: {m.group(1)}"
                for m in _MD_LINK.finditer(text)
                if "://" not in m.group(1) and not (path.parent / m.group(1)).is_file()
            ]
    assert not stale, stale


#: Every shipped package, whole: the light library (what plugins import, robots and their SDK contract included),
#: the tools distribution (bench, speed, export, serve, recipes, data, testing, training, cli), and the sources of
#: every policy, robot and env plugin, simulated vendor SDKs included (their annotations are not part of the SDK
#: contract, which compares parameter names, kinds, defaults and returned values). Globs; ``tests/`` folders are
#: not covered.
TYPED = [
    "lerobot_vla_plugins",
    "tools/src/lerobot_vla_tools",
    "policies/*/src",
    "robots/*/src",
    "envs/*/src",
]


def _untyped_public_functions(path: Path) -> list[str]:
    """``file:line name`` of public functions/methods with an unannotated argument or no return annotation
    (``self``/``cls``, ``*args``/``**kwargs`` and ``_`` are exempt)."""
    found = []

    def visit(node: ast.AST, public: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, public and not child.name.startswith("_"))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                if not public or child.name.startswith("_"):
                    continue
                a = child.args
                named = [
                    x for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls", "_")
                ]
                if child.returns is None or any(x.annotation is None for x in named):
                    found.append(f"{path.relative_to(REPO)}:{child.lineno} {child.name}")

    visit(ast.parse(path.read_text()), True)
    return found


def test_public_functions_of_the_library_have_type_hints():
    untyped = []
    for entry in TYPED:
        roots = sorted(REPO.glob(entry))
        assert roots, f"TYPED entry {entry!r} matches nothing"
        for root in roots:
            for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
                if "tests" not in path.relative_to(REPO).parts:
                    untyped += _untyped_public_functions(path)
    assert not untyped, untyped
