"""Import a local LeRobot v2.1 dataset (the format the Evo-1 datasets were released in) as v3.0.

The conversion itself is LeRobot's (``lerobot.scripts.convert_dataset_v21_to_v30``: info, tasks, data,
videos, episode metadata). This wrapper makes it a safe, offline, one-command import:

* the source is read-only: LeRobot's script renames the source to ``<root>_old`` and swaps the result
  in; here the result is written to a temporary directory and moved to ``output`` when complete;
* nothing is pushed and nothing is downloaded (LeRobot's script defaults to ``--push-to-hub=true`` and
  downloads when no local copy exists);
* a source that is not v2.1 gets an error saying what was found.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from lerobot_vla_plugins.atomic import atomic_directory

logger = logging.getLogger(__name__)

V21 = "v2.1"


@dataclass
class ImportV21Config:
    """Flags of ``lerobot-vla-data import_v21``."""

    # The local v2.1 dataset directory (with ``meta/info.json``). Default: ``$HF_LEROBOT_HOME/<repo_id>``,
    # where a cached Hub download lives.
    root: str | None = None
    # Repo id recorded for the dataset, e.g. ``MINT-SJTU/Evo1_MetaWorld_Dataset``.
    repo_id: str = "local/imported"
    # Where the v3.0 dataset is written (must not exist unless ``overwrite``). Default: ``<root>_v30``.
    output: str | None = None
    overwrite: bool = False
    data_file_size_in_mb: int | None = None
    video_file_size_in_mb: int | None = None


def inspect_version(root: Path) -> str:
    """Codebase version of the dataset at ``root``.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: ``root`` is not a LeRobot dataset (no ``meta/info.json``) or its info is unreadable.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"root: {root} does not exist; pass --root=<local v2.1 dataset directory>")
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        found = sorted(p.name for p in root.iterdir())[:10]
        raise ValueError(
            f"root: {root} is not a LeRobot dataset: no meta/info.json (found {found}). "
            "Pass the directory that contains meta/ and data/."
        )
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"root: {info_path} is not valid JSON ({err})") from err
    return str(info.get("codebase_version", "unknown"))


def import_v21(cfg: ImportV21Config) -> Path:
    """Convert the v2.1 dataset at ``cfg.root`` to v3.0 at ``cfg.output``; returns the output path.

    Raises:
        ValueError: the source is not a v2.1 LeRobot dataset (the message names the version found).
        FileExistsError: the output exists and ``overwrite`` is False.
    """
    from lerobot.scripts import convert_dataset_v21_to_v30 as conv
    from lerobot.utils.constants import HF_LEROBOT_HOME

    root = Path(cfg.root).expanduser().absolute() if cfg.root else Path(HF_LEROBOT_HOME) / cfg.repo_id
    version = inspect_version(root)
    if version != V21:
        hint = " It is already v3.0: load it directly with --dataset.root." if version == "v3.0" else ""
        raise ValueError(
            f"root: {root} is a LeRobot dataset of codebase version {version!r}, not {V21!r}.{hint}"
        )
    output = Path(cfg.output).expanduser().absolute() if cfg.output else root.parent / f"{root.name}_v30"
    if output == root:
        raise ValueError("output: must differ from root (the source is never modified)")

    data_mb = cfg.data_file_size_in_mb or conv.DEFAULT_DATA_FILE_SIZE_IN_MB
    video_mb = cfg.video_file_size_in_mb or conv.DEFAULT_VIDEO_FILE_SIZE_IN_MB
    with atomic_directory(output, overwrite=cfg.overwrite, what="output") as tmp:
        logger.info("Converting %s (v2.1) -> %s (v3.0)", root, output)
        conv.convert_info(root, tmp, data_mb, video_mb)
        conv.convert_tasks(root, tmp)
        episodes_metadata = conv.convert_data(root, tmp, data_mb)
        episodes_videos_metadata = conv.convert_videos(root, tmp, video_mb)
        conv.convert_episodes_metadata(root, tmp, episodes_metadata, episodes_videos_metadata)
    return output
