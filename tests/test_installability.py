"""Installability, from the built artefacts (slow: builds every distribution, then two fresh virtual environments).

``uv build --all-packages`` must give a wheel and an sdist of every distribution. The robot plugin alone and one
policy plugin alone are then installed from those wheels into fresh venvs (their third-party dependencies come
from the package index; the uv cache makes that fast), and LeRobot's own plugin discovery
(``register_third_party_plugins``) must find exactly their types, with no import error, and the robot plugin must
bring no MuJoCo, Meta-World or transformers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")

#: Run in the fresh venv: the distributions installed and the config types register_third_party_plugins() adds.
PROBE = r"""
import importlib, importlib.metadata as md, io, json, logging, pkgutil, sys
log = io.StringIO()
logging.basicConfig(stream=log, level=logging.ERROR)
import lerobot.envs.configs, lerobot.policies  # the built-in types register first, as in every lerobot-* CLI
from lerobot.cameras.configs import CameraConfig
from lerobot.configs.policies import PreTrainedConfig
from lerobot.envs.configs import EnvConfig
from lerobot.robots.config import RobotConfig
from lerobot.teleoperators.config import TeleoperatorConfig
from lerobot.utils.import_utils import register_third_party_plugins
registries = {"policy": PreTrainedConfig, "env": EnvConfig, "robot": RobotConfig, "teleop": TeleoperatorConfig,
              "camera": CameraConfig}
before = {k: set(r.get_known_choices()) for k, r in registries.items()}
register_third_party_plugins()
new = {k: sorted(set(r.get_known_choices()) - before[k]) for k, r in registries.items()}
plugin = importlib.import_module(sys.argv[1])
failed = []
for m in pkgutil.walk_packages(plugin.__path__, sys.argv[1] + "."):
    try:
        importlib.import_module(m.name)
    except ImportError as err:  # a vendor SDK imported at module level would show here
        failed.append(f"{m.name}: {err}")
print(json.dumps({"new": new, "dists": sorted(d.metadata["Name"] for d in md.distributions()),
                  "log": log.getvalue(), "failed_imports": failed}))
"""


def _norm(name: str) -> str:
    return name.replace("-", "_").lower()


def _distributions() -> list[str]:
    files = [ROOT / "pyproject.toml", ROOT / "tools" / "pyproject.toml"]
    files += [p for kind in ("policies", "envs", "robots") for p in (ROOT / kind).glob("*/pyproject.toml")]
    return sorted(tomllib.loads(p.read_text())["project"]["name"] for p in files)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    assert UV, "uv is not installed in the project environment (scripts/bootstrap.sh installs it)"
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([UV, "build", "--all-packages", "--out-dir", str(out)], cwd=ROOT, check=True, timeout=1200)
    return out


def _wheel(dist: Path, name: str) -> Path:
    (wheel,) = dist.glob(f"{name}-*.whl")
    return wheel


def _fresh_venv_with(tmp_path: Path, dist: Path, names: list[str]) -> dict:
    venv = tmp_path / "venv"
    subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    wheels = [str(_wheel(dist, n)) for n in names]  # our wheels by path: never a same-named index package
    subprocess.run(
        [UV, "pip", "install", "--quiet", "--python", str(python), *wheels], check=True, timeout=1200
    )
    out = subprocess.run(
        [str(python), "-c", PROBE, names[0]], check=True, capture_output=True, text=True, timeout=600
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_distribution_builds_a_wheel_and_an_sdist_with_licence_and_readme(dist):
    for name in _distributions():
        wheel = _wheel(dist, name)
        (sdist,) = dist.glob(f"{name}-*.tar.gz")
        with zipfile.ZipFile(wheel) as z:
            files = z.namelist()
            (metadata,) = [f for f in files if f.endswith(".dist-info/METADATA")]
            text = z.read(metadata).decode()
        assert any(f.endswith(".dist-info/licenses/LICENSE") for f in files), f"{wheel.name}: no LICENSE"
        assert "License-Expression: Apache-2.0" in text, f"{wheel.name}: licence metadata"
        assert f"# {name}" in text, f"{wheel.name}: the package README is not the long description"
        assert {f.split("/")[0] for f in files} == {name, metadata.split("/")[0]}, (
            f"{wheel.name}: stray packages"
        )
        with tarfile.open(sdist) as t:
            members = {m.name.split("/", 1)[-1]: m for m in t.getmembers()}
        assert "LICENSE" in members and members["LICENSE"].isfile(), f"{sdist.name}: LICENSE must be a file"
        if (
            name == "lerobot_vla_plugins"
        ):  # the workspace root: its tests/ are the repository's, not the library's
            assert not [m for m in members if m.startswith("tests/")], (
                f"{sdist.name}: ships the repository's tests"
            )


def _install_alone(tmp_path: Path, dist: Path, plugin: str) -> tuple[dict, set[str]]:
    """Install ``plugin`` (and the light library) from the built wheels into a fresh venv; returns what LeRobot's
    discovery added and the installed distributions. Only those two of ours are installed, nothing failed to import."""
    found = _fresh_venv_with(tmp_path, dist, [plugin, "lerobot_vla_plugins"])
    assert not found["log"], found["log"]
    assert not found["failed_imports"]
    installed = {_norm(d) for d in found["dists"]}
    assert {d for d in installed if d.startswith("lerobot")} == {"lerobot", plugin, "lerobot_vla_plugins"}
    return found["new"], installed


def test_the_robot_plugin_alone_registers_only_its_robot_and_pulls_no_simulator_or_vlm(dist, tmp_path):
    new, installed = _install_alone(tmp_path, dist, "lerobot_robot_xarm6")
    assert new == {"policy": [], "env": [], "robot": ["xarm6"], "teleop": [], "camera": []}
    assert not installed & {"mujoco", "metaworld", "transformers", "diffusers", "matplotlib"}


def test_a_policy_plugin_alone_registers_only_its_policy(dist, tmp_path):
    new, installed = _install_alone(tmp_path, dist, "lerobot_policy_seer")
    assert new == {"policy": ["seer"], "env": [], "robot": [], "teleop": [], "camera": []}
    assert "transformers" in installed  # the policy's own model library, at LeRobot's pin
    assert not installed & {"mujoco", "metaworld", "matplotlib"}
