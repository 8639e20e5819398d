"""``lerobot-vla-bench``: run a paper's evaluation protocol with ``lerobot-eval`` and write the paper's table.

Usage::

    lerobot-vla-bench --protocol=metaworld --policy.path=outputs/train/evo1_mw/checkpoints/last/pretrained_model \
        --output_dir=outputs/bench/mw
    lerobot-vla-bench --protocol=metaworld --tasks=easy --trials=2 --seeds='[1000]' --policy.path=... --output_dir=...
    lerobot-vla-bench --protocol=libero --tasks=libero_spatial:0-1 --policy.path=... --output_dir=... --policy.device=cuda
    lerobot-vla-bench --protocol=robotwin --tasks=click_alarmclock:easy --policy.path=... --output_dir=...
    lerobot-vla-bench --protocol=calvin --trials=100 --env.dataset_path=~/calvin/dataset/task_ABC_D --policy.path=... --output_dir=...
    lerobot-vla-bench --protocol=learning --output_dir=outputs/learning [--policies=a1,evo1]   # train + evaluate, docs/learning.md

Rerun the same command to resume: finished units are skipped. ``--report_only=true`` rewrites the table from the
units finished so far; ``--dry_run=true`` prints the lerobot-eval commands. Every ``--policy.*``, ``--env.*``,
``--eval.*`` and ``--rename_map`` flag goes to each lerobot-eval run (write them as ``--flag=value``).
For an evo1 checkpoint the Evo-1 paper's evaluation settings are applied (``--preset=auto``; flags you pass win).
"""

from __future__ import annotations

import sys

import draccus

from .base import ProtocolError
from .runner import BenchConfig, BenchRun, split_passthrough


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    learning = "--protocol=learning" in argv or "--protocol learning" in " ".join(argv)
    if any(a in ("-h", "--help") for a in argv) and not learning:
        print(__doc__)
    try:
        if learning:  # trains as well as evaluates, with flags of its own (protocols/learning.py)
            from .learning import run_from_argv

            run_from_argv(argv)
            return 0
        bench_argv, passthrough = split_passthrough(argv)
        cfg = draccus.parse(BenchConfig, args=bench_argv)
        from lerobot.utils.import_utils import register_third_party_plugins

        from . import get_protocol

        register_third_party_plugins()  # env plugins (calvin, robotwin_randomized) for the feature check
        if not cfg.protocol:
            raise ProtocolError("--protocol is required: metaworld, libero, robotwin or calvin")
        protocol = get_protocol(cfg.protocol, chains_per_unit=cfg.chains_per_unit)
        BenchRun(protocol, cfg, passthrough).run()
    except ProtocolError as err:
        print(f"lerobot-vla-bench: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"lerobot-vla-bench: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "lerobot-vla-bench: interrupted; finished units (and stages) are kept, rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
