"""Where the time of one ``select_action`` (chunk refresh) goes: torch profiler + per-module wall time.

Usage::

    python -m lerobot_vla_tools.speed.profile --case=evo1@paper [--batch_size=1] [--device=cpu] [--dtype=float32]
        [--rows=25] [--trace=outputs/speed/evo1_paper.json]

Builds the case exactly as ``lerobot-vla-speed`` does (random weights; tiny backbones built in a temporary
directory), runs one warm-up refresh, then profiles one refresh. Prints (1) wall time per top-level module of the
policy (forward hooks; a module called several times, e.g. the DiT blocks once per denoising step, is summed),
(2) the profiler's operator table sorted by self CPU time. ``--trace`` writes a Chrome trace.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def module_timer(
    policy: nn.Module, names: list[str]
) -> tuple[dict[str, float], dict[str, int], Callable[[], object]]:
    """Forward hooks accumulating wall time per named submodule; returns (totals, calls, remove).

    A ``*`` in a name matches every index of a ``ModuleList`` (``transformer_blocks.*.attn``): the matching
    modules are summed under that name.
    """
    import re

    totals: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    starts: dict[int, list[float]] = defaultdict(list)
    handles = []
    for name in names:
        pattern = re.compile("^" + re.escape(name).replace(r"\*", r"\d+") + "$")
        for mod_name, module in policy.named_modules():
            if not pattern.match(mod_name):
                continue

            def pre(m, _a):
                starts[id(m)].append(time.perf_counter())

            def post(m, _a, _o, name=name):
                totals[name] += time.perf_counter() - starts[id(m)].pop()
                calls[name] += 1

            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    return totals, calls, lambda: [h.remove() for h in handles]


#: Submodules reported for upstream evo1 (others: every direct child of the policy's model).
EVO1_PARTS = [
    "model.embedder.model.vision_tower",
    "model.embedder.model.multi_modal_projector",
    "model.embedder.model.language_model",
    "model.action_head.state_encoder",
    "model.action_head.action_encoder",
    "model.action_head.transformer_blocks.*",
    "model.action_head.transformer_blocks.*.attn",
    "model.action_head.transformer_blocks.*.ff",
    "model.action_head.seq_pool_proj",
    "model.action_head.mlp_head",
]


def main(argv: list[str] | None = None) -> int:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from lerobot_vla_tools.speed import iter_cases
    from lerobot_vla_tools.speed.worker import build_policy, observation_batch

    p = argparse.ArgumentParser(prog="python -m lerobot_vla_tools.speed.profile")
    p.add_argument("--case", required=True, help="<name>@<size>, e.g. evo1@paper")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--rows", type=int, default=25)
    p.add_argument("--trace", default=None)
    p.add_argument("--json", default=None, help="write the module breakdown and top operators as JSON")
    args = p.parse_args(argv)

    cases = {c.key: c for c in iter_cases()}
    if args.case not in cases:
        print(f"unknown case {args.case!r}; available: {', '.join(sorted(cases))}", file=sys.stderr)
        return 2
    case = cases[args.case]
    with tempfile.TemporaryDirectory() as tmp:
        overrides = dict(case.overrides)
        overrides.update(case.dtype_overrides.get(args.dtype, {}))
        if case.prepare is not None:
            overrides.update(case.prepare(Path(tmp)))
        spec = {
            "policy_type": case.policy_type,
            "size": case.size,
            "features": case.features,
            "device": args.device,
            "overrides": overrides,
            "cast_dtype": None
            if args.dtype in case.dtype_overrides or args.dtype == "float32"
            else args.dtype,
        }
        policy, pre, _, cfg = build_policy(spec)
        batch = pre(observation_batch(cfg.input_features, args.batch_size, torch.Generator().manual_seed(0)))
        policy.eval()
        parts = (
            EVO1_PARTS
            if case.policy_type == "evo1"
            else [f"model.{n}" for n, _ in policy.model.named_children()]
        )
        with torch.inference_mode():
            policy.reset()
            policy.select_action(batch)  # warm-up
            totals, calls, remove = module_timer(policy, parts)
            policy.reset()
            t0 = time.perf_counter()
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                policy.select_action(batch)
            wall = time.perf_counter() - t0
            remove()
    print(
        f"{args.case} batch {args.batch_size} {args.device} {args.dtype}: one refresh {wall:.2f} s (under the profiler)"
    )
    print(f"{'module':<50} {'s':>8} {'share':>7} {'calls':>6}")
    for name in parts:
        if name in totals:
            print(f"{name:<50} {totals[name]:8.2f} {totals[name] / wall:7.1%} {calls[name]:6d}")
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows)
    print(table)
    if args.trace:
        Path(args.trace).parent.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(args.trace)
    if args.json:
        ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[: args.rows]
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps(
                {
                    "case": args.case,
                    "batch_size": args.batch_size,
                    "wall_s": wall,
                    "modules": {n: {"s": totals[n], "calls": calls[n]} for n in parts if n in totals},
                    "ops": [
                        {"name": e.key, "self_cpu_s": e.self_cpu_time_total / 1e6, "calls": e.count}
                        for e in ops
                    ],
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
