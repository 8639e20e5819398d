"""Release metadata and dependency seams of every distribution, read from the pyproject files.

The slow ``test_installability.py`` builds the wheels and installs them; this file checks the same promises in
seconds: each distribution can be published (version, licence, README, classifiers, URLs), the robot plugins pull
no VLM library or simulator, the policy plugins no simulator, and the console scripts users know still exist.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = sorted(
    [ROOT / "pyproject.toml", ROOT / "tools" / "pyproject.toml"]
    + [p for kind in ("policies", "envs", "robots") for p in (ROOT / kind).glob("*/pyproject.toml")]
)
#: Libraries that only the tools (simulators, plots) or only the policy plugins (VLM stacks) may pull.
SIMULATORS_AND_PLOTS = {"mujoco", "metaworld", "matplotlib", "gym-hil", "hf-libero", "libero"}
VLM_LIBRARIES = {"transformers", "diffusers", "peft", "accelerate", "tokenizers", "num2words"}
#: LeRobot extras a policy plugin may ask for: model libraries and dataset reading, never a simulator.
POLICY_LEROBOT_EXTRAS = {"transformers-dep", "diffusers-dep", "peft-dep", "scipy-dep", "dataset"}
KNOWN_COMMANDS = {
    "lerobot-vla-info": "lerobot_vla_tools.cli.info:main",
    "lerobot-vla-data": "lerobot_vla_tools.data.cli:main",
    "lerobot-vla-demo": "lerobot_vla_tools.cli.demo:main",
    "lerobot-vla-bench": "lerobot_vla_tools.bench.cli:main",
    "lerobot-vla-speed": "lerobot_vla_tools.speed.cli:main",
    "lerobot-vla-evo1-convert": "lerobot_vla_tools.convert.evo1:main",
    "lerobot-vla-evo1-recipe": "lerobot_vla_tools.recipes.evo1_two_stage:main",
    "lerobot-vla-accelerate-config": "lerobot_vla_tools.training.accelerate:main",
}


def _load(path: Path) -> dict:
    return tomllib.loads(path.read_text())["project"]


PROJECTS = {_load(p)["name"]: (p, _load(p)) for p in PROJECT_FILES}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(name: str) -> list[Requirement]:
    return [Requirement(r) for r in PROJECTS[name][1].get("dependencies", [])]


def _closure(name: str) -> list[Requirement]:
    """Every requirement ``name`` pulls, following the workspace's own distributions."""
    ours = {_norm(n): n for n in PROJECTS}
    seen, todo, external = set(), [name], []
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for req in _requirements(current):
            if _norm(req.name) in ours:
                todo.append(ours[_norm(req.name)])
            else:
                external.append(req)
    return external


def test_every_distribution_of_the_workspace_is_checked():
    kinds = {n.split("_")[1] for n in PROJECTS if n.startswith("lerobot_") and n.count("_") >= 2}
    assert {"lerobot_vla_plugins", "lerobot_vla_tools"} <= set(PROJECTS)
    assert {"policy", "env", "robot"} <= kinds
    assert len(PROJECTS) == len(PROJECT_FILES)


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_distribution_has_release_metadata(name):
    path, project = PROJECTS[name]
    where = path.parent
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"]), f"{name}: version"
    assert project["license"] == "Apache-2.0", f"{name}: license must be the SPDX expression 'Apache-2.0'"
    for lic in project["license-files"]:
        assert (where / lic).is_file(), f"{name}: licence file {lic} missing next to {path}"
        assert "Apache License" in (where / lic).read_text()
    readme = where / project["readme"]
    assert readme.is_file() and readme.read_text().startswith(f"# {name}"), f"{name}: package README {readme}"
    assert "Programming Language :: Python :: 3.12" in project["classifiers"]
    assert not [c for c in project["classifiers"] if c.startswith("License ::")], (
        f"{name}: with a PEP 639 licence expression, licence classifiers are refused by the build backend"
    )
    assert {"Homepage", "Repository", "Issues"} <= set(project["urls"]), f"{name}: project URLs"


def test_all_distributions_share_one_version_and_repository():
    assert len({p["version"] for _, p in PROJECTS.values()}) == 1
    assert len({p["urls"]["Repository"] for _, p in PROJECTS.values()}) == 1


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_dependencies_on_our_distributions_take_the_current_release_series(name):
    ours = {_norm(n) for n in PROJECTS}
    version = PROJECTS[name][1]["version"]
    for req in _requirements(name):
        if _norm(req.name) in ours:
            assert req.specifier, f"{name}: {req.name} needs a version range (it is published separately)"
            assert req.specifier.contains(version), f"{name}: {req} excludes the workspace version {version}"


def test_the_light_library_needs_bare_lerobot():
    reqs = _requirements("lerobot_vla_plugins")
    lerobot = [r for r in reqs if r.name == "lerobot"]
    assert lerobot and not lerobot[0].extras, "the light library depends on lerobot without extras"
    pulled = {_norm(r.name) for r in reqs}
    assert not pulled & (SIMULATORS_AND_PLOTS | VLM_LIBRARIES)


@pytest.mark.parametrize("name", sorted(n for n in PROJECTS if n.startswith("lerobot_robot_")))
def test_robot_plugins_pull_no_vlm_library_and_no_simulator(name):
    for req in _closure(name):
        assert _norm(req.name) not in SIMULATORS_AND_PLOTS | VLM_LIBRARIES, f"{name} pulls {req}"
        if req.name == "lerobot":
            assert not req.extras, f"{name} pulls {req}: robot plugins need bare lerobot"


@pytest.mark.parametrize(
    "name", sorted(n for n in PROJECTS if n.startswith(("lerobot_policy_", "lerobot_env_")))
)
def test_policy_and_env_plugins_pull_no_simulator_or_tool(name):
    for req in _closure(name):
        assert _norm(req.name) not in SIMULATORS_AND_PLOTS, f"{name} pulls {req}"
        assert _norm(req.name) != "lerobot-vla-tools", f"{name} pulls the tools"
        if req.name == "lerobot":
            assert req.extras <= POLICY_LEROBOT_EXTRAS, f"{name} pulls {req}"


@pytest.mark.parametrize(
    "name", sorted(n for n in PROJECTS if n.startswith(("lerobot_policy_", "lerobot_robot_")))
)
def test_plugins_follow_lerobots_discovery_contract(name):
    """LeRobot imports a distribution whose Name starts with lerobot_<kind>_ by that very name."""
    path, _ = PROJECTS[name]
    assert "-" not in name
    assert (path.parent / "src" / name / "__init__.py").is_file()


def test_the_commands_users_know_are_declared_by_the_tools():
    scripts = PROJECTS["lerobot_vla_tools"][1]["scripts"]
    assert {k: scripts.get(k) for k in KNOWN_COMMANDS} == KNOWN_COMMANDS
    for target in KNOWN_COMMANDS.values():
        module, func = target.split(":")
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"{target}: module missing"
        assert f"def {func}(" in Path(spec.origin).read_text(), f"{target}: no function {func}"


def test_command_names_agree_with_their_packages():
    """``lerobot-vla-bench`` runs the package ``bench``, ``lerobot-vla-speed`` the package ``speed``."""
    for command in ("bench", "speed", "data"):
        assert KNOWN_COMMANDS[f"lerobot-vla-{command}"].startswith(f"lerobot_vla_tools.{command}.")


def test_one_command_points_every_distribution_at_the_published_repository(tmp_path):
    """scripts/set_project_url.py (what the release workflow tells a maintainer to run) rewrites every URL of
    every distribution, and refuses what is not a GitHub repository URL."""
    spec = importlib.util.spec_from_file_location("set_project_url", ROOT / "scripts" / "set_project_url.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert sorted(script.pyprojects()) == PROJECT_FILES
    for path in PROJECT_FILES:
        copy = tmp_path / path.relative_to(ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(path.read_text())
    url = "https://github.com/someone/vla-fork"
    changed = script.set_url(url + "/", tmp_path)
    assert len(changed) == len(PROJECT_FILES)
    for copy in script.pyprojects(tmp_path):
        urls = _load(copy)["urls"]
        assert urls["Repository"] == urls["Homepage"] == url
        assert urls["Issues"] == url + "/issues" and urls["Documentation"].startswith(url)
    with pytest.raises(SystemExit, match="not https://github.com/<owner>/<repo>"):
        script.set_url("http://example.com/x", tmp_path)
