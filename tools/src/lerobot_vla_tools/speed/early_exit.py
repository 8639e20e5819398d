"""A1 early-exit benchmark (paper Tables 3 and 6): one policy, the same held-out inputs, three inference modes.

1. full depth + 10 flow-matching steps (A1-FM);
2. early exit, 10 steps per exit, each exit from noise (Table 6 "1.0, 10");
3. early exit with inter-layer truncated flow matching, delta = 2 steps per exit, warm-started (Table 6 "1.0, 2*").

Thresholds for modes 2 and 3 are calibrated (``calibrate_thresholds``) in that mode on calibration frames (episode
0 of a real Meta-World dataset), then every mode runs on held-out frames (episode 1) in episode order. Printed per
mode: latency per query, executed backbone layers, analytic FLOPs, and the mean |action - full-depth action| over
the chunk (normalised units; the full-depth row's own value is the flow-matching noise floor: a second full-depth run
with other noise).

Usage::

    python -m lerobot_vla_tools.speed.early_exit --size=cpu            # 28-layer Molmo-style model, random weights
    python -m lerobot_vla_tools.speed.early_exit --size=paper --device=cuda   # paper size (needs a GPU)
    python -m lerobot_vla_tools.speed.early_exit --policy_path=<A1 checkpoint> --dataset_root=<its dataset>

Sizes: ``tiny`` (the test model, 4 layers), ``cpu`` (28 layers like Qwen2-7B, narrow enough for a CPU: LLM width
256, 4 heads x 64, 2 KV heads; expert width 128, 2 heads x 64; CLIP-style ViT 336 px / 14, 144 tokens per view,
two views), ``paper`` (Molmo-7B-D geometry + the 271M expert, random weights built with ``weightless_pretrained``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lerobot_vla_tools.speed import print_rows

if TYPE_CHECKING:
    from lerobot_policy_a1.modeling_a1 import A1Policy

    from lerobot_vla_plugins.adaptive import ExitCalibration

PAPER = {
    "full depth + 10 FM steps": "1.151 s/query (Table 3); 37.8 s/episode (Table 6, no exit, 10)",
    "early exit, 10 steps/exit": "4.443 s/query at the last layer (Table 3); 40.9 s/episode (Table 6, 1.0, 10)",
    "early exit, truncated FM (delta=2)": "0.728 s/query at the last layer (Table 3); 10.5 s/episode, -72.3% (Table 6, 1.0, 2*)",
}


def _two_view_features():
    from lerobot.configs.types import FeatureType, PolicyFeature

    inputs = {
        "observation.images.primary": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 480, 480)),
        "observation.images.wrist": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 480, 480)),
        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(4,)),
    }
    return inputs, {"action": PolicyFeature(type=FeatureType.ACTION, shape=(4,))}


def build_policy(size: str, device: str, scratch: Path) -> A1Policy:
    """A random-weight A1 policy of ``size`` with two views (primary + wrist, as the paper's LIBERO setup)."""
    from lerobot.policies.factory import get_policy_class, make_policy_config
    from lerobot.utils.import_utils import register_third_party_plugins

    from lerobot_vla_tools.testing.molmo import build_tiny_molmo
    from lerobot_vla_tools.testing.weightless import weightless_pretrained

    register_third_party_plugins()
    inputs, outputs = _two_view_features()
    common = {"input_features": inputs, "output_features": outputs, "device": device, "push_to_hub": False}
    if size == "paper":
        cfg = make_policy_config("a1", vlm_dtype="bfloat16", **common)
        with weightless_pretrained(device=device, dtype=torch.bfloat16):
            policy = get_policy_class("a1")(cfg, weightless=True)
        policy.model.head.to(device=device, dtype=torch.float32)
        return policy.to(device)
    if size == "tiny":
        path, over = (
            scratch / "tiny_molmo",
            {"expert_hidden_size": 32, "expert_num_heads": 2, "expert_intermediate_size": 64},
        )
        if not (path / "molmo_backbone.json").is_file():
            build_tiny_molmo(path)
    elif size == "cpu":
        path = scratch / "cpu_molmo"
        over = {"expert_hidden_size": 128, "expert_num_heads": 2, "expert_intermediate_size": 256}
        if not (path / "molmo_backbone.json").is_file():
            build_tiny_molmo(
                path,
                image_size=336,
                patch_size=14,
                vision_hidden_size=128,
                vision_layers=4,
                vision_heads=2,
                projector_hidden_size=512,
                text_hidden_size=256,
                text_layers=28,
                text_heads=4,
                text_kv_heads=2,
                text_intermediate_size=1024,
            )
    else:
        raise ValueError(f"--size must be tiny, cpu or paper, got {size!r}")
    cfg = make_policy_config("a1", backbone_family="molmo", vlm_name=str(path), **over, **common)
    return get_policy_class("a1")(cfg).to(device)


def metaworld_frames(
    n_calib: int, n_eval: int, two_views: bool, root: str | None = None
) -> tuple[list[dict], list[dict]]:
    """Calibration frames from episode 0 and held-out frames (in order) from episode 1 of a real Meta-World dataset."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from lerobot_vla_tools.testing.fixtures import cached_metaworld_dataset

    if root is None:
        repo_id, root = cached_metaworld_dataset(episodes=2)
    else:
        repo_id = f"local/{Path(root).name}"
    ds = LeRobotDataset(repo_id, root=root)
    ep = ds.meta.episodes
    out = []
    for e, n in ((0, n_calib), (1, n_eval)):
        start, stop = int(ep["dataset_from_index"][e]), int(ep["dataset_to_index"][e])
        idx = torch.linspace(start, stop - 1, min(n, stop - start)).long().tolist()
        frames = []
        for i in idx:
            item = ds[i]
            img = item["observation.image"]
            f = {"observation.state": item["observation.state"][None], "task": [item["task"]]}
            if two_views:
                f["observation.images.primary"], f["observation.images.wrist"] = img[None], img.flip(-1)[None]
            else:
                f["observation.image"] = img[None]
            frames.append(f)
        out.append(frames)
    return out[0], out[1]


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def calibrate_mode(
    policy: A1Policy,
    frames: list[dict[str, Any]],
    steps: int,
    warm: bool,
    exit_dist: str,
    exit_ratio: float,
    disable_first: bool,
    batch_size: int = 8,
) -> ExitCalibration:
    from lerobot_vla_plugins.adaptive import ExitCalibration, calibrate_thresholds

    m = policy.model
    policy.config.exit_fm_steps, policy.config.exit_warm_start = steps, warm
    g = torch.Generator(device=policy.config.device).manual_seed(1)
    values = []
    with torch.no_grad():
        for i in range(0, len(frames), batch_size):
            chunk = frames[i : i + batch_size]
            batch = {
                k: (
                    torch.cat([f[k] for f in chunk])
                    if isinstance(chunk[0][k], torch.Tensor)
                    else sum((f[k] for f in chunk), [])
                )
                for k in chunk[0]
            }
            res, _ = m.predict_early_exit(_to(batch, policy.config.device), thresholds=None, generator=g)
            values.append(res.discrepancies)
    v = torch.cat(values, dim=1)
    th = calibrate_thresholds(v, exit_dist, exit_ratio, disable_first_exit=disable_first)
    cal = ExitCalibration(
        m.exit_layers,
        th,
        m.num_layers,
        policy.config.exit_metric,
        exit_dist,
        exit_ratio,
        disable_first,
        v.shape[1],
        policy.calibration_settings(),
    )
    policy.set_exit_calibration(cal)
    return cal


def run_mode(policy: A1Policy, frames: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Time ``predict_action_chunk`` on every frame (one episode: reset first, warm memory carried between queries)."""
    dev = policy.config.device
    sync = torch.cuda.synchronize if str(dev).startswith("cuda") else (lambda: None)
    policy.reset()
    with torch.no_grad():
        policy.predict_action_chunk(_to(frames[0], dev))  # warm-up (not timed)
    policy.reset()
    g = torch.Generator(device=dev).manual_seed(seed)
    times, layers, flops, actions = [], [], [], []
    with torch.no_grad():
        for f in frames:
            batch = _to(f, dev)
            sync()
            t0 = time.perf_counter()
            a = policy.predict_action_chunk(batch, generator=g)
            sync()
            times.append(time.perf_counter() - t0)
            info = policy.last_exit_info
            layers.append(info["exit_layer"][0] + 1)
            flops.append(info["flops"][0])
            actions.append(a.float().cpu())
    return {"times": times, "layers": layers, "flops": flops, "actions": torch.cat(actions)}


def benchmark(
    policy: A1Policy,
    calib: list[dict[str, Any]],
    held_out: list[dict[str, Any]],
    exit_dist: str = "exp",
    exit_ratio: float = 1.0,
    disable_first: bool = True,
) -> list[dict[str, Any]]:
    rows = []
    policy.set_exit_calibration(None)
    policy.config.num_inference_steps = 10
    full = run_mode(policy, held_out, seed=0)
    floor = run_mode(policy, held_out, seed=123)
    modes = [
        ("full depth + 10 FM steps", None),
        ("early exit, 10 steps/exit", (10, False)),
        ("early exit, truncated FM (delta=2)", (2, True)),
    ]
    for name, setting in modes:
        if setting is None:
            res, diff = full, (floor["actions"] - full["actions"]).abs().mean().item()
        else:
            calibrate_mode(policy, calib, *setting, exit_dist, exit_ratio, disable_first)
            res = run_mode(policy, held_out, seed=0)
            diff = (res["actions"] - full["actions"]).abs().mean().item()
        rows.append(
            {
                "mode": name,
                "latency_ms": 1e3 * statistics.mean(res["times"]),
                "latency_std_ms": 1e3 * (statistics.stdev(res["times"]) if len(res["times"]) > 1 else 0.0),
                "executed_layers": statistics.mean(res["layers"]),
                "gflops": statistics.mean(res["flops"]) / 1e9,
                "action_diff": diff,
                "paper": PAPER[name],
            }
        )
    base = rows[0]["latency_ms"]
    for r in rows:
        r["latency_change"] = r["latency_ms"] / base - 1
    policy.set_exit_calibration(None)
    return rows


def format_table(rows: list[dict], header: str) -> str:
    out = [
        header,
        f"{'mode':<36} {'latency ms':>14} {'vs full':>8} {'layers':>7} {'GFLOPs':>9} {'|a-a_full|':>11}  paper",
    ]
    for r in rows:
        lat = f"{r['latency_ms']:.1f}±{r['latency_std_ms']:.1f}"
        out.append(
            f"{r['mode']:<36} {lat:>14} {r['latency_change']:>+8.1%} {r['executed_layers']:>7.2f} {r['gflops']:>9.3f} "
            f"{r['action_diff']:>11.4f}  {r['paper']}"
        )
    out.append(
        "|a-a_full| of the full-depth row = a second full-depth run with other noise (the sampling noise floor)."
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="cpu", choices=["tiny", "cpu", "paper"])
    ap.add_argument(
        "--policy_path",
        default=None,
        help="benchmark a trained A1 checkpoint instead (uses its preprocessor)",
    )
    ap.add_argument(
        "--dataset_root",
        default=None,
        help="Meta-World LeRobot dataset root (default: the cached 2-episode one)",
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--calib_frames", type=int, default=48)
    ap.add_argument("--eval_frames", type=int, default=16)
    ap.add_argument("--exit_dist", default="exp")
    ap.add_argument("--exit_ratio", type=float, default=1.0)
    ap.add_argument(
        "--disable_first_exit",
        default="true",
        choices=["true", "false"],
        help="as the released code for the paper's 7B backbone (default true)",
    )
    ap.add_argument("--scratch", default="outputs/bench/a1_early_exit")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    if args.policy_path:
        from lerobot.policies.factory import make_pre_post_processors
        from lerobot.utils.import_utils import register_third_party_plugins

        register_third_party_plugins()
        from lerobot_policy_a1.modeling_a1 import A1Policy

        policy = A1Policy.from_pretrained(args.policy_path, load_calibration=False).to(args.device)
        pre, _ = make_pre_post_processors(
            policy.config,
            pretrained_path=args.policy_path,
            preprocessor_overrides={"device_processor": {"device": args.device}},
        )
        calib, held = metaworld_frames(
            args.calib_frames, args.eval_frames, two_views=False, root=args.dataset_root
        )
        calib, held = [pre(f) for f in calib], [pre(f) for f in held]
        what = f"checkpoint {args.policy_path}"
    else:
        policy = build_policy(args.size, args.device, scratch)
        calib, held = metaworld_frames(
            args.calib_frames, args.eval_frames, two_views=True, root=args.dataset_root
        )
        what = f"size={args.size} (random weights)"
    policy.eval()
    m = policy.model
    rows = benchmark(policy, calib, held, args.exit_dist, args.exit_ratio, args.disable_first_exit == "true")
    dev = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    header = (
        f"A1 early-exit benchmark: {what}, {m.num_layers} backbone layers, exits {m.exit_layers}, "
        f"{len(held)} held-out queries, thresholds {args.exit_dist} c={args.exit_ratio} on {len(calib)} frames, {dev}"
    )
    print_rows(format_table(rows, header), header, rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
