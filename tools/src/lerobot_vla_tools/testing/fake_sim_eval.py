"""Run the real ``lerobot-eval`` with a simulator runtime replaced at its boundary (see ``sim_fakes``).

Usage (what tests pass to ``lerobot-vla-bench --lerobot_eval=...``)::

    python -m lerobot_vla_tools.testing.fake_sim_eval --fake=libero --policy.path=... --env.type=libero ...
"""

from __future__ import annotations

import sys

from .sim_fakes import INSTALLERS


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    fakes = [a.split("=", 1)[1] for a in argv if a.startswith("--fake=")]
    unknown = [f for f in fakes if f not in INSTALLERS]
    if not fakes or unknown:
        raise SystemExit(f"fake_sim_eval: pass --fake=<{'|'.join(INSTALLERS)}> (got {fakes})")
    for fake in fakes:
        INSTALLERS[fake]()  # before lerobot-eval imports the env modules
    sys.argv = ["lerobot-eval", *[a for a in argv if not a.startswith("--fake=")]]
    from lerobot.scripts.lerobot_eval import main as lerobot_eval_main

    lerobot_eval_main()


if __name__ == "__main__":
    main()
