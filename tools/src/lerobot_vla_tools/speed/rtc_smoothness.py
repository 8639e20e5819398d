"""Action smoothness at chunk boundaries: synchronous chunked inference vs real-time chunking (RTC), for any LeRobot
policy with ``supports_rtc()``.

Both modes replan every ``n_action_steps`` control ticks from the observation of that tick, on the same stream of
observations (frames of a LeRobot dataset episode, one per tick) and with the same sampling noise:

* ``sync`` - what ``lerobot-rollout --inference.type=sync`` does: the robot executes ``n_action_steps`` actions of a
  chunk, then waits (holds its last command) for the ``delay`` ticks the next chunk takes, then executes it from its
  first action;
* ``rtc`` - what ``--inference.type=rtc`` does (LeRobot's ``ActionQueue`` and its ``merge``): the next chunk is
  requested ``delay`` ticks before the current one's ``n_action_steps`` are used up, computed with
  ``predict_action_chunk(..., inference_delay=delay, prev_chunk_left_over=<unexecuted original actions>)`` (the
  left-over padded or cut to the execution horizon as LeRobot's RTC engine does), and merged when it is ready: its
  first ``delay`` actions (spent while it was computed) are dropped, no tick waits.

The clock is simulated (``delay`` is a parameter, not measured), so a run is deterministic and a slow CPU measures
the same thing as a robot computer. Jerk is the third difference of the executed commands (postprocessed, robot
units) times fps^3; "at boundaries" takes the jerk values whose 4-tick stencil is centred on the step into a new
chunk's first action (or into / out of a wait), "inside" all others. Printed per mode: max and mean |jerk| at boundaries and inside
chunks (max over action dims), and the ticks spent waiting.

Usage::

    python -m lerobot_vla_tools.speed.rtc_smoothness --policy_path=<checkpoint> --dataset_root=<dataset> \\
        [--dataset_repo_id=local/x] [--episode=0] [--ticks=96] [--n_action_steps=4] [--delays=0,2] \\
        [--execution_horizon=8] [--fps=30] [--device=cpu] [--json=rows.json]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lerobot_vla_tools.speed import print_rows

if TYPE_CHECKING:
    from lerobot.policies.pretrained import PreTrainedPolicy
    from lerobot.policies.rtc import RTCConfig
    from lerobot.processor import PolicyProcessorPipeline


@dataclass
class Rollout:
    """What one simulated run executed.

    Attributes:
        actions: (S, A) commands sent at each of the S ticks.
        boundaries: ticks at which a new chunk's first used action (or the first command after a wait) was sent.
        waits: ticks on which the robot held its last command because no action was ready.
        chunks: number of chunks predicted.
    """

    actions: torch.Tensor
    boundaries: list[int]
    waits: int
    chunks: int


def _chunk(
    policy: PreTrainedPolicy,
    preprocessor: PolicyProcessorPipeline,
    postprocessor: PolicyProcessorPipeline,
    obs: dict,
    seed: int,
    **rtc: object,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(original (T, A), processed (T, A)) of one chunk predicted on ``obs`` with the noise of ``seed``."""
    torch.manual_seed(seed)
    with torch.no_grad():
        original = policy.predict_action_chunk(preprocessor(dict(obs)), **rtc)
        processed = postprocessor(original.clone())
    return original.squeeze(0).detach().cpu(), processed.squeeze(0).detach().cpu()


def run_sync(
    policy: PreTrainedPolicy,
    preprocessor: PolicyProcessorPipeline,
    postprocessor: PolicyProcessorPipeline,
    observations: Callable[[int], dict],
    ticks: int,
    n_action_steps: int,
    delay: int,
) -> Rollout:
    """Synchronous chunking: execute ``n_action_steps`` actions, wait ``delay`` ticks for the next chunk."""
    policy.reset()
    actions, boundaries, waits, chunks, tick = [], [], 0, 0, 0
    last = None
    while tick < ticks:
        _, chunk = _chunk(policy, preprocessor, postprocessor, observations(tick), seed=chunks)
        chunks += 1
        if last is not None and delay:
            boundaries.append(tick)  # the robot stops: it holds its last command while the policy computes
        for _ in range(delay if last is not None else 0):
            if tick >= ticks:
                break
            actions.append(last)
            waits += 1
            tick += 1
        boundaries.append(tick)
        for a in chunk[:n_action_steps]:
            if tick >= ticks:
                break
            actions.append(a)
            last = a
            tick += 1
    return Rollout(torch.stack(actions), boundaries, waits, chunks)


def run_rtc(
    policy: PreTrainedPolicy,
    preprocessor: PolicyProcessorPipeline,
    postprocessor: PolicyProcessorPipeline,
    observations: Callable[[int], dict],
    ticks: int,
    n_action_steps: int,
    delay: int,
    rtc_config: RTCConfig,
) -> Rollout:
    """Real-time chunking with LeRobot's ``ActionQueue``: the next chunk is requested ``delay`` ticks before the
    current one has had ``n_action_steps`` actions executed, and merged (its first ``delay`` dropped) when ready."""
    from lerobot.policies.rtc import ActionQueue
    from lerobot.rollout.inference.rtc import _normalize_prev_actions_length

    policy.config.rtc_config = rtc_config
    policy.init_rtc_processor()
    policy.reset()
    queue = ActionQueue(rtc_config)
    actions, boundaries, waits, chunks = [], [], 0, 0
    pending = None  # (ready tick, original chunk, processed chunk, queue index when requested, delay)
    since = 0  # actions executed since the last merge
    for tick in range(ticks):
        first = chunks == 0
        if pending is None and (first or since >= n_action_steps - delay):
            prev = None if first else queue.get_left_over()
            if prev is not None:
                prev = _normalize_prev_actions_length(prev, target_steps=rtc_config.execution_horizon)
            d = 0 if first else delay  # the first chunk is computed before the robot moves
            original, processed = _chunk(
                policy,
                preprocessor,
                postprocessor,
                observations(tick),
                seed=chunks,
                inference_delay=d,
                prev_chunk_left_over=None if prev is None else prev.unsqueeze(0),
            )
            if original.shape[0] < n_action_steps + delay:
                raise ValueError(
                    f"a chunk of {original.shape[0]} actions cannot cover {n_action_steps} actions per chunk plus "
                    f"{delay} delay ticks"
                )
            chunks += 1
            pending = (tick + d, original, processed, queue.get_action_index(), d)
        if pending is not None and tick >= pending[0]:
            _, original, processed, before, d = pending
            queue.merge(original, processed, d, before)
            pending, since = None, 0
            boundaries.append(tick)
        action = queue.get()
        if action is None:  # never with a long enough chunk; counted like a sync wait
            actions.append(actions[-1])
            waits += 1
            continue
        actions.append(action)
        since += 1
    return Rollout(torch.stack(actions), boundaries, waits, chunks)


def jerk(actions: torch.Tensor, fps: float) -> torch.Tensor:
    """(S - 3,) max over action dims of |third difference| * fps^3; entry k spans ticks k .. k + 3."""
    d3 = actions[3:] - 3 * actions[2:-1] + 3 * actions[1:-2] - actions[:-3]
    return d3.abs().amax(-1) * fps**3


def boundary_stats(run: Rollout, fps: float) -> dict:
    """Max / mean |jerk| of the stencils centred on a boundary and of the others.

    Stencil k (ticks k .. k + 3) is centred on the step from tick k + 1 to k + 2; it is "at a boundary" when tick
    k + 2 is one (a new chunk's first action, or the start / end of a wait), "inside" otherwise.
    """
    j = jerk(run.actions.float(), fps)
    centre = torch.arange(len(j)) + 2
    at = torch.isin(centre, torch.tensor([b for b in run.boundaries if b > 0], dtype=torch.long))
    inside = j[~at]
    return {
        "boundary_max_jerk": float(j[at].max()) if at.any() else float("nan"),
        "boundary_mean_jerk": float(j[at].mean()) if at.any() else float("nan"),
        "inside_max_jerk": float(inside.max()) if inside.numel() else float("nan"),
        "inside_mean_jerk": float(inside.mean()) if inside.numel() else float("nan"),
        "waits": run.waits,
        "chunks": run.chunks,
    }


def compare(
    policy: PreTrainedPolicy,
    preprocessor: PolicyProcessorPipeline,
    postprocessor: PolicyProcessorPipeline,
    observations: Callable[[int], dict],
    ticks: int,
    n_action_steps: int,
    delays: list[int],
    fps: float,
    rtc_config: RTCConfig,
) -> list[dict]:
    """One row per (mode, delay); the policy must support RTC."""
    if not (callable(getattr(policy, "supports_rtc", None)) and policy.supports_rtc()):
        raise ValueError(
            f"{type(policy).__name__} does not support real-time chunking (supports_rtc() is False)"
        )
    rows = []
    for delay in delays:
        if not 0 <= delay < n_action_steps:
            raise ValueError(f"delay {delay} must be in [0, n_action_steps={n_action_steps})")
        saved = policy.config.rtc_config
        policy.config.rtc_config = None
        policy.init_rtc_processor()
        sync = run_sync(policy, preprocessor, postprocessor, observations, ticks, n_action_steps, delay)
        rtc = run_rtc(
            policy, preprocessor, postprocessor, observations, ticks, n_action_steps, delay, rtc_config
        )
        policy.config.rtc_config = saved
        policy.init_rtc_processor()
        rows.append({"mode": "sync", "delay": delay, **boundary_stats(sync, fps)})
        rows.append({"mode": "rtc", "delay": delay, **boundary_stats(rtc, fps)})
    return rows


def format_table(rows: list[dict], header: str) -> str:
    out = [
        header,
        f"{'mode':<5} {'delay':>5} {'max jerk @ boundary':>20} {'mean jerk @ boundary':>21} "
        f"{'max jerk inside':>16} {'mean jerk inside':>17} {'waits':>6} {'chunks':>7}",
    ]
    for r in rows:
        out.append(
            f"{r['mode']:<5} {r['delay']:>5} {r['boundary_max_jerk']:>20.4g} {r['boundary_mean_jerk']:>21.4g} "
            f"{r['inside_max_jerk']:>16.4g} {r['inside_mean_jerk']:>17.4g} {r['waits']:>6} {r['chunks']:>7}"
        )
    return "\n".join(out)


def dataset_observations(repo_id: str, root: str, episode: int) -> tuple[Callable[[int], dict], int]:
    """Tick k -> frame k of ``episode`` (the last frame after its end), as a raw observation batch of one."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(repo_id, root=root)
    ep = ds.meta.episodes
    start, stop = int(ep["dataset_from_index"][episode]), int(ep["dataset_to_index"][episode])
    cache: dict[int, dict] = {}

    def at(tick: int) -> dict:
        i = min(start + tick, stop - 1)
        if i not in cache:
            item = ds[i]
            obs = {
                k: v for k, v in item.items() if k.startswith("observation.") and isinstance(v, torch.Tensor)
            }
            cache[i] = {**obs, "task": item["task"]}
        return cache[i]

    return at, stop - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy_path", required=True, help="a checkpoint whose policy supports RTC")
    ap.add_argument(
        "--dataset_root", required=True, help="LeRobot dataset whose episode gives the observations"
    )
    ap.add_argument("--dataset_repo_id", default=None, help="default: local/<root folder name>")
    ap.add_argument("--episode", type=int, default=0)
    ap.add_argument("--ticks", type=int, default=96)
    ap.add_argument("--n_action_steps", type=int, default=None, help="default: the policy's n_action_steps")
    ap.add_argument("--delays", default="0,2", help="comma-separated inference delays in ticks")
    ap.add_argument(
        "--execution_horizon", type=int, default=None, help="RTC horizon (default: the chunk size)"
    )
    ap.add_argument("--max_guidance_weight", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    from lerobot.policies.rtc.configuration_rtc import RTCConfig
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()
    cfg = PreTrainedConfig.from_pretrained(args.policy_path)
    cfg.device = args.device
    policy = get_policy_class(cfg.type).from_pretrained(args.policy_path, config=cfg).to(args.device).eval()
    pre, post = make_pre_post_processors(
        policy.config,
        pretrained_path=args.policy_path,
        preprocessor_overrides={"device_processor": {"device": args.device}},
    )
    repo_id = args.dataset_repo_id or f"local/{Path(args.dataset_root).name}"
    observations, length = dataset_observations(repo_id, args.dataset_root, args.episode)
    chunk = int(getattr(policy.config, "chunk_size", 0) or getattr(policy.config, "n_action_steps", 1))
    n = args.n_action_steps or int(policy.config.n_action_steps)
    rtc = RTCConfig(
        execution_horizon=args.execution_horizon or chunk, max_guidance_weight=args.max_guidance_weight
    )
    delays = [int(d) for d in args.delays.split(",") if d.strip()]
    rows = compare(policy, pre, post, observations, args.ticks, n, delays, args.fps, rtc)
    header = (
        f"RTC vs sync smoothness: {cfg.type} {args.policy_path}, {args.ticks} ticks at {args.fps:g} fps over episode "
        f"{args.episode} of {repo_id} ({length} frames), chunk {chunk}, {n} actions per chunk, RTC execution horizon "
        f"{rtc.execution_horizon}, schedule {rtc.prefix_attention_schedule.value}; jerk in action units / s^3"
    )
    print_rows(format_table(rows, header), header, rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
