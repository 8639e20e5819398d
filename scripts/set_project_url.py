#!/usr/bin/env python3
"""Points the ``[project.urls]`` of every distribution of the workspace at one GitHub repository.

The URLs ship as ``https://github.com/lerobot-vla-plugins/lerobot-vla-plugins`` until a maintainer publishes the
repository; the release workflow refuses to build a tag whose URLs are not the repository it runs in. Usage:

    python scripts/set_project_url.py https://github.com/<owner>/<repo>
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_GITHUB = re.compile(r"^https://github\.com/[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$")


def pyprojects(root: Path = ROOT) -> list[Path]:
    """The root pyproject and every workspace member's (tools, policies, envs, robots)."""
    members = [root / "tools"] + [
        p for d in ("policies", "envs", "robots") for p in sorted((root / d).glob("*"))
    ]
    return [root / "pyproject.toml"] + [
        m / "pyproject.toml" for m in members if (m / "pyproject.toml").is_file()
    ]


def repository_url(path: Path) -> str:
    """``[project.urls].Repository`` of one pyproject."""
    return tomllib.loads(path.read_text())["project"]["urls"]["Repository"]


def set_url(url: str, root: Path = ROOT) -> list[Path]:
    """Rewrites every occurrence of each pyproject's current repository URL by ``url``; returns the files changed."""
    url = url.rstrip("/")
    if not _GITHUB.match(url):
        raise SystemExit(f"set_project_url: {url!r} is not https://github.com/<owner>/<repo>")
    changed = []
    for path in pyprojects(root):
        old = repository_url(path)
        text = path.read_text()
        new = text.replace(old, url)
        if new != text:
            path.write_text(new)
            changed.append(path)
        if repository_url(path) != url:
            raise SystemExit(f"set_project_url: {path}: Repository is still {repository_url(path)!r}")
    return changed


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    changed = set_url(argv[0])
    print(f"[set_project_url] {len(changed)} pyproject.toml files now point at {argv[0].rstrip('/')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
