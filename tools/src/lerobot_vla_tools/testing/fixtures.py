"""Shared test fixtures: a small real Meta-World dataset (cached), and running the installed LeRobot commands.

Used by the root ``conftest.py`` (so every package's tests get them) and by the demo and benchmarks.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_CACHE = REPO_ROOT / "outputs" / "test-cache"

#: The task the tiny datasets use: the expert succeeds in 60-75 steps and its image shows where the button is.
TEST_TASK = "button-press-topdown-v3"


def _builder_fingerprint() -> str:
    """Changes when the dataset builder or LeRobot changes, so cached datasets are rebuilt."""
    import lerobot

    h = hashlib.sha256(lerobot.__version__.encode())
    data_dir = Path(__file__).resolve().parents[1] / "data"
    for name in ("metaworld.py", "metaworld_tasks.py", "quantiles.py"):
        h.update((data_dir / name).read_bytes())
    import lerobot_vla_plugins.features as layout  # the recorded feature layout

    h.update(Path(layout.__file__).read_bytes())
    return h.hexdigest()[:12]


def cached_metaworld_dataset(
    episodes: int = 2,
    task: str = TEST_TASK,
    seed: int = 0,
    use_videos: bool = True,
    cache_dir: Path | None = None,
) -> tuple[str, Path]:
    """A Meta-World expert dataset built once and reused (keyed by the builder's source and LeRobot version).

    Returns:
        ``(repo_id, root)`` to pass as ``--dataset.repo_id`` / ``--dataset.root``.
    """
    from lerobot_vla_tools.data.metaworld import MetaWorldBuildConfig, build_metaworld_dataset

    cache_dir = Path(os.environ.get("VLA_TEST_CACHE", cache_dir or DEFAULT_CACHE))
    name = f"mw-{task}-{episodes}ep-s{seed}-{'video' if use_videos else 'image'}-{_builder_fingerprint()}"
    root = cache_dir / name
    repo_id = f"local/{name}"
    if not (root / "meta" / "info.json").is_file():
        os.environ.setdefault("MUJOCO_GL", "egl")
        if root.exists():
            shutil.rmtree(root)
        build_metaworld_dataset(
            MetaWorldBuildConfig(
                tasks=task,
                episodes_per_task=episodes,
                seed=seed,
                root=str(root),
                repo_id=repo_id,
                use_videos=use_videos,
                progress=False,
            )
        )
    return repo_id, root


def lerobot_env(home: Path | None = None) -> dict[str, str]:
    """Environment for running LeRobot commands offline and headless in tests."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        WANDB_MODE="disabled",
        MUJOCO_GL=env.get("MUJOCO_GL", "egl"),
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    if home is not None:
        env["HF_LEROBOT_HOME"] = str(home)
    return env


def run_cli(
    command: str, *args: str, cwd: Path | None = None, timeout: float = 900, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run an installed console script (``lerobot-train``, ``lerobot-eval``, ...) from this environment.

    Raises:
        AssertionError: non-zero exit; the message carries the command and the tail of its output.
    """
    exe = Path(sys.executable).parent / command
    if not exe.exists():
        raise FileNotFoundError(f"{command} is not installed in {exe.parent}")
    proc = subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        env=env or lerobot_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-60:])
        raise AssertionError(f"{command} {' '.join(args)} exited {proc.returncode}:\n{tail}")
    return proc
