"""The layering of STYLE.md, read from the source (every import statement, also those inside functions).

* the light library (what plugins import at runtime) imports no plugin and no tool;
* plugin packages (``policies/``, ``envs/``, ``robots/``, their ``src`` only: tests are not shipped) import no tool;
* the tools' subpackages (``lerobot_vla_tools.*``) form no import cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIGHT = ROOT / "lerobot_vla_plugins"
TOOLS_SRC = ROOT / "tools" / "src"
PLUGIN_PREFIXES = (
    "lerobot_policy_",
    "lerobot_robot_",
    "lerobot_env_",
    "lerobot_camera_",
    "lerobot_teleoperator_",
)


def _is_tool(module: str) -> bool:
    return module == "lerobot_vla_tools" or module.startswith("lerobot_vla_tools.")


def _module_name(path: Path, src_root: Path) -> str:
    parts = list(path.relative_to(src_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``; relative imports are resolved."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # ``from pkg import submodule``
                yield node.lineno, f"{target}.{alias.name}"


def _light_modules() -> Iterator[tuple[Path, str]]:
    for path in sorted(LIGHT.rglob("*.py")):
        yield path, _module_name(path, ROOT)


def _tool_modules() -> Iterator[tuple[Path, str]]:
    for path in sorted(TOOLS_SRC.rglob("*.py")):
        yield path, _module_name(path, TOOLS_SRC)


def _plugin_modules() -> Iterator[tuple[Path, str]]:
    for kind in ("policies", "envs", "robots"):
        for src in sorted((ROOT / kind).glob("*/src")):
            for path in sorted(src.rglob("*.py")):
                yield path, _module_name(path, src)


def _violations(modules, forbidden) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for path, module in modules
        for line, target in _imports(path, module)
        if forbidden(target)
    ]


def test_the_light_library_imports_no_plugin_and_no_tool():
    light = list(_light_modules())
    assert light, "no light module found"
    bad = _violations(light, lambda t: t.startswith(PLUGIN_PREFIXES) or _is_tool(t))
    assert not bad, "the light library must not import plugins or tools:\n" + "\n".join(bad)


def test_plugins_import_no_tool():
    plugins = list(_plugin_modules())
    assert plugins, "no plugin source found"
    bad = _violations(plugins, _is_tool)
    assert not bad, (
        "plugin packages must not import tools (move the helper into the light library):\n" + "\n".join(bad)
    )


def _subpackage(module: str) -> str:
    """``lerobot_vla_tools.speed.cases.a1`` -> ``lerobot_vla_tools.speed``."""
    return ".".join(module.split(".")[:2])


def test_the_tools_have_no_import_cycle():
    graph: dict[str, set[str]] = {}
    tools = list(_tool_modules())
    assert tools, "no tool module found"
    for path, module in tools:
        for _, target in _imports(path, module):
            if _is_tool(target) and _subpackage(target) != _subpackage(module):
                graph.setdefault(_subpackage(module), set()).add(_subpackage(target))
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle between tool packages: " + " -> ".join(cycle)


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}}, None),
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
    ],
)
def test_the_cycle_finder_reports_the_cycle(graph, expected):
    assert _find_cycle(graph) == expected
