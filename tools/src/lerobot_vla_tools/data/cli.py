"""``lerobot-vla-data``: build local Meta-World demonstrations, or import a v2.1 dataset as v3.0.

Usage::

    lerobot-vla-data metaworld --tasks=easy --episodes_per_task=50 --repo_id=local/mw_easy
    lerobot-vla-data metaworld --tasks=button-press-topdown,reach --episodes_per_task=20 --root=data/mw
    lerobot-vla-data import_v21 --root=~/data/Evo1_MetaWorld_Dataset --repo_id=MINT-SJTU/Evo1_MetaWorld_Dataset

Flags are LeRobot's draccus style (``--field=value``); ``lerobot-vla-data <command> --help`` lists them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import draccus

from .metaworld import MetaWorldBuildConfig
from .v21 import ImportV21Config

COMMANDS = {"metaworld": MetaWorldBuildConfig, "import_v21": ImportV21Config, "import-v21": ImportV21Config}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        if argv and argv[0] not in ("-h", "--help"):
            print(
                f"lerobot-vla-data: error: unknown command {argv[0]!r}; choose one of: metaworld, import_v21",
                file=sys.stderr,
            )
            return 2
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    cfg = draccus.parse(COMMANDS[command], args=rest)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if command == "metaworld":
            os.environ.setdefault("MUJOCO_GL", "egl")
            from .metaworld import build_metaworld_dataset

            report = build_metaworld_dataset(cfg)
            print(report.table())
            print(f"\nWrote {report.episodes} episodes ({report.frames} frames) to {report.root}")
            print(
                f"Train on it: lerobot-train --dataset.repo_id={report.repo_id} --dataset.root={report.root} ..."
            )
        else:
            from .v21 import import_v21

            out = import_v21(cfg)
            info = json.loads((Path(out) / "meta" / "info.json").read_text())
            print(
                f"Converted to v3.0: {out} ({info['total_episodes']} episodes, {info['total_frames']} frames)"
            )
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as err:
        print(f"lerobot-vla-data: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
