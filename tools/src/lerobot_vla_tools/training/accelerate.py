"""The accelerate configs shipped with the collection, and what ``accelerate launch`` makes of them.

``lerobot-vla-accelerate-config fsdp_7b`` prints the path of a shipped config, for
``accelerate launch --config_file "$(lerobot-vla-accelerate-config fsdp_7b)" ... $(which lerobot-train) ...``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "accelerate_configs"


def available_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def config_path(name: str) -> Path:
    """Path of the shipped accelerate config ``name`` (e.g. ``fsdp_7b``).

    Raises:
        ValueError: no shipped config has that name (the message lists them).
    """
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no accelerate config named {name!r}; shipped: {', '.join(available_configs())}")
    return path


def launch_env(config_file: str | Path, *launch_args: str) -> dict[str, str]:
    """The environment ``accelerate launch --config_file <file> <launch_args>`` gives each training process
    (``ACCELERATE_USE_FSDP``, ``FSDP_*``, ``ACCELERATE_MIXED_PRECISION``...), computed by accelerate's own
    launcher code without starting anything."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(config_file), *launch_args, "train.py"])
    args, *_ = _validate_launch_command(args)
    env = prepare_multi_gpu_env(args)
    return {k: v for k, v in env.items() if k.startswith(("ACCELERATE_", "FSDP_"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lerobot-vla-accelerate-config",
        description="Print the path of an accelerate config shipped with lerobot-vla-plugins.",
    )
    parser.add_argument("name", nargs="?", help=f"one of: {', '.join(available_configs())}")
    args = parser.parse_args(argv)
    if args.name is None:
        print("\n".join(available_configs()))
        return 0
    try:
        print(config_path(args.name))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from lerobot_vla_plugins import compat

    if compat.accelerate_env_refused():
        print(
            "note: this LeRobot refuses `accelerate launch --config_file` (it sets ACCELERATE_USE_FSDP); shard with "
            "`torchrun --nproc_per_node=N $(which lerobot-train) --parallelism.dp_shard=N ...` instead: our "
            "policies declare the same wrap units (_fsdp_wrap_modules)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
