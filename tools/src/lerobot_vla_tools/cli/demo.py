"""``lerobot-vla-demo``: the whole workflow on an embedded default, on a CPU, in minutes.

1. records Meta-World demonstrations with the scripted expert (``lerobot-vla-data metaworld``),
2. builds a small backbone locally with the testing kit (no download) and trains a policy with ``lerobot-train``,
3. evaluates the checkpoint with ``lerobot-eval --env.type=metaworld`` (success rate and videos),
4. plots the training loss and prints a summary: success per task, the video paths, the loss-curve PNG.

Everything runs through LeRobot's own commands, as a user would run them. The success rate is reported as
measured, whatever it is.

Usage::

    lerobot-vla-demo                                  # evo1 on button-press-topdown-v3, ~25 min on 2 CPU cores
    lerobot-vla-demo --steps=3000 --eval_episodes=10  # longer
    lerobot-vla-demo --policy=vla_adapter              # another policy of the collection (its tiny bench case)
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import draccus

LOSS_RE = re.compile(r"\bstep:\S+ .*?\bloss:([0-9.eE+-]+)")


@dataclass
class DemoConfig:
    # Policy type to train: "evo1" (LeRobot's, with a small InternVL) or any type of this collection that ships
    # a tiny bench case (tools/src/lerobot_vla_tools/speed/cases/<policy>.py).
    policy: str = "evo1"
    # Meta-World task (a single task keeps the demo short; see `lerobot-vla-data metaworld --help`).
    task: str = "button-press-topdown-v3"
    # Scripted-expert demonstrations to record.
    episodes: int = 24
    # Training steps and batch size.
    steps: int = 2000
    batch_size: int = 8
    # Evaluation episodes in Meta-World (each takes ~0.25 s per step on CPU: rendering dominates).
    eval_episodes: int = 5
    # Where everything goes: data/, backbone/, train/, eval/, loss_curve.png, summary.json.
    output_dir: str = "outputs/demo"
    # Data-loading worker processes for lerobot-train (1 overlaps video decoding with the model step on 2 cores).
    num_workers: int = 1
    seed: int = 1000
    # Extra `lerobot-train` flags, e.g. ["--policy.optimizer_lr=1e-3"].
    train_args: list[str] = field(default_factory=list)
    # Start again from scratch instead of reusing finished stages in output_dir.
    fresh: bool = False


def evo1_recipe(scratch: Path) -> list[str]:
    """LeRobot's evo1 at demo size: a 64 px, 4-layer InternVL built locally, a 2-block flow-matching head."""
    from lerobot_vla_tools.testing import build_tiny_internvl

    path = scratch / "internvl"
    if not (path / "config.json").is_file():
        build_tiny_internvl(
            path,
            image_size=64,
            patch_size=8,
            vision_hidden_size=64,
            text_hidden_size=128,
            text_intermediate_size=256,
            text_heads=4,
            text_kv_heads=2,
            seed=0,
        )
    return [
        "--policy.type=evo1",
        f"--policy.vlm_model_name={path}",
        "--policy.image_resolution=[64,64]",
        "--policy.vlm_num_layers=4",
        "--policy.vlm_dtype=float32",
        "--policy.use_flash_attn=false",
        "--policy.enable_gradient_checkpointing=false",
        "--policy.max_text_length=128",
        "--policy.max_views=1",
        "--policy.training_stage=stage2",  # from scratch: the backbone is random, so it must train too
        "--policy.embed_dim=128",
        "--policy.hidden_dim=256",
        "--policy.state_hidden_dim=256",
        "--policy.num_heads=4",
        "--policy.num_layers=2",
        "--policy.chunk_size=16",
        "--policy.n_action_steps=8",
        "--policy.num_inference_timesteps=8",
        "--policy.optimizer_lr=3e-4",
        "--policy.optimizer_weight_decay=1e-4",
        "--policy.scheduler_warmup_steps=100",
    ]


def bench_case_recipe(policy: str, scratch: Path) -> list[str]:
    """Any other policy: its tiny bench case (testing-kit backbone + tiny overrides)."""
    from lerobot_vla_tools.speed import iter_cases

    cases = [c for c in iter_cases() if c.policy_type == policy and c.size == "tiny"]
    if not cases:
        raise ValueError(
            f"policy: no tiny bench case for {policy!r}; choose evo1 or a type with tools/src/lerobot_vla_tools/speed/cases/{policy}.py"
        )
    case = cases[0]
    overrides = case.resolve_overrides(scratch)
    return [f"--policy.type={policy}"] + [f"--policy.{k}={_flag(v)}" for k, v in overrides.items()]


def _flag(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


#: Environment of the demo's commands: the SVT-AV1 encoder (LeRobot's default video codec) prints a banner of
#: ~20 ``Svt[info]`` lines and a ``Svt[warn]`` per encoded episode; level 1 keeps its errors only.
QUIET_ENCODER_ENV = {"SVT_LOG": "1"}

#: libav's own log lines (``[mp4 @ 0x55d...] Starting second pass: ...``); kept when they report an error.
_LIBAV_LINE = re.compile(r"^\[[\w:,-]+ @ 0x[0-9a-f]+\] ")


def _run(cmd: list[str], log_path: Path, env: dict) -> None:
    """Run a command, streaming its output to the terminal and, all of it, to ``log_path``.

    Lines are split at ``\n`` and at ``\r`` and passed on with their own ending, so that a progress bar (tqdm
    redraws its line after a ``\r``) keeps redrawing in place instead of printing one line per update.
    """
    print(f"\n$ {' '.join(cmd)}\n", flush=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert proc.stdout is not None
        # newline="": universal line splitting (\n, \r, \r\n) without translating the endings
        for segment in io.TextIOWrapper(proc.stdout, encoding="utf-8", errors="replace", newline=""):
            log.write(segment)
            if _worth_showing(segment):
                sys.stdout.write(segment)
                sys.stdout.flush()
        proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(
            f"{Path(cmd[0]).name} failed with exit code {proc.returncode}; full log: {log_path}"
        )


def _worth_showing(line: str) -> bool:
    """Hide LeRobot's optional-dependency noise (torchcodec without system FFmpeg, EGL teardown) and the video
    encoders' info lines (SVT-AV1, libav), in case ``QUIET_ENCODER_ENV`` did not reach them."""
    stripped = line.strip()
    if stripped.startswith("Svt[") and not stripped.startswith("Svt[error"):
        return False
    if _LIBAV_LINE.match(stripped) and "rror" not in stripped:
        return False
    noisy = (
        "torchcodec",
        "libtorchcodec",
        "FFmpeg",
        "libav",
        "OSError",
        "load_library",
        "EGL",
        "egl/__init__",
        "Traceback",
        "ctypes",
        "raise ",
        "^",
        "The above exception",
        "_dlopen",
        "self._handle",
        "[start of",
        "[end of",
        "Errors for versions",
        "version compatibility",
        "https://github.com/pytorch/torchcodec",
        "Likely causes",
        "installed FFmpeg",
        "full-shared",
        "The PyTorch version",
        "Another runtime dependency",
        "exceptions were raised",
        "cannot open shared object",
        "this version of TorchCodec",
        "Refer to the version",
        "table:",
        "FFmpeg version",
        "We support",
        "for each of those",
        "your system are expected",
        "version is relevant",
        "ships DLLs",
    )
    return bool(stripped) and not any(n in line for n in noisy) and not stripped.startswith("File ")


def parse_losses(log_text: str, log_freq: int) -> list[tuple[int, float]]:
    """(step, loss) from lerobot-train's log lines (``step:... loss:0.123 ...``); the k-th line is step k*log_freq."""
    losses = [float(m.group(1)) for m in LOSS_RE.finditer(log_text)]
    return [((i + 1) * log_freq, loss) for i, loss in enumerate(losses)]


def plot_loss(points: list[tuple[int, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    steps, values = zip(*points, strict=True)
    ax.plot(steps, values, lw=1.5)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (log scale)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    cfg = draccus.parse(DemoConfig, args=sys.argv[1:] if argv is None else argv)
    from lerobot_vla_tools.testing.fixtures import lerobot_env

    out = Path(cfg.output_dir).expanduser().absolute()
    if cfg.fresh and out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**QUIET_ENCODER_ENV, **lerobot_env(home=out / "hf_lerobot_home")}  # a user's SVT_LOG wins
    os.environ.setdefault("MUJOCO_GL", "egl")
    bin_dir = Path(sys.executable).parent
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    # 1. data
    data_root = out / "data"
    repo_id = f"local/demo_{cfg.task}"
    if not (data_root / "meta" / "info.json").is_file():
        _run(
            [
                str(bin_dir / "lerobot-vla-data"),
                "metaworld",
                f"--tasks={cfg.task}",
                f"--episodes_per_task={cfg.episodes}",
                f"--root={data_root}",
                f"--repo_id={repo_id}",
                "--overwrite=true",
            ],
            out / "data.log",
            env,
        )
    report = json.loads((data_root / "meta" / "build_report.json").read_text())
    timings["data_s"] = time.perf_counter() - t0

    # 2. train
    t1 = time.perf_counter()
    recipe = (
        evo1_recipe(out / "backbone")
        if cfg.policy == "evo1"
        else bench_case_recipe(cfg.policy, out / "backbone")
    )
    train_dir = out / "train"
    log_freq = max(1, min(50, cfg.steps // 40))
    last = train_dir / "checkpoints" / "last" / "pretrained_model"
    if not last.is_dir():
        if train_dir.exists():
            import shutil

            shutil.rmtree(train_dir)  # an unfinished run: lerobot-train refuses an existing output_dir
        # One core per data-loading worker, the rest for the model: more threads than cores makes the small
        # matrix products of a tiny model wait on each other (measured: 8x slower steps on 2 busy cores).
        train_env = dict(env)
        train_env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) - cfg.num_workers)))
        _run(
            [
                str(bin_dir / "lerobot-train"),
                *recipe,
                "--policy.device=cpu",
                "--policy.push_to_hub=false",
                f"--dataset.repo_id={repo_id}",
                f"--dataset.root={data_root}",
                f"--steps={cfg.steps}",
                f"--batch_size={cfg.batch_size}",
                f"--num_workers={cfg.num_workers}",
                f"--save_freq={cfg.steps}",
                f"--log_freq={log_freq}",
                f"--seed={cfg.seed}",
                f"--output_dir={train_dir}",
                *cfg.train_args,
            ],
            out / "train.log",
            train_env,
        )
    timings["train_s"] = time.perf_counter() - t1
    losses = parse_losses((out / "train.log").read_text(), log_freq)
    curve = out / "loss_curve.png"
    if losses:
        plot_loss(losses, curve, f"{cfg.policy} on {cfg.task} ({report['episodes']} demos, CPU)")

    # 3. evaluate
    t2 = time.perf_counter()
    eval_dir = out / "eval"
    if not (eval_dir / "eval_info.json").is_file():
        if eval_dir.exists():
            import shutil

            shutil.rmtree(eval_dir)
        _run(
            [
                str(bin_dir / "lerobot-eval"),
                f"--policy.path={last}",
                "--env.type=metaworld",
                f"--env.task={cfg.task}",
                # batch 1: in a vector env a finished episode keeps rendering until the whole batch is done, and
                # rendering dominates on CPU; one env at a time costs only each episode's own steps.
                f"--eval.n_episodes={cfg.eval_episodes}",
                "--eval.batch_size=1",
                "--eval.use_async_envs=false",
                "--policy.device=cpu",
                f"--seed={cfg.seed}",
                f"--output_dir={eval_dir}",
            ],
            out / "eval.log",
            env,
        )
    timings["eval_s"] = time.perf_counter() - t2
    info = json.loads((eval_dir / "eval_info.json").read_text())

    # 4. summary
    per_task = [
        {
            "task": t["task_group"] if t["task_group"] != cfg.task else cfg.task,
            "task_id": t["task_id"],
            "success_rate": 100.0 * sum(t["metrics"]["successes"]) / max(1, len(t["metrics"]["successes"])),
            "episodes": len(t["metrics"]["successes"]),
            "videos": t["metrics"]["video_paths"],
        }
        for t in info["per_task"]
    ]
    summary = {
        "policy": cfg.policy,
        "task": cfg.task,
        "demonstrations": report["episodes"],
        "expert_success_rate": report["expert_success_rate"],
        "steps": cfg.steps,
        "first_loss": losses[0][1] if losses else None,
        "last_loss": losses[-1][1] if losses else None,
        "success_rate": info["overall"]["pc_success"],
        "eval_episodes": info["overall"]["n_episodes"],
        "per_task": per_task,
        "loss_curve": str(curve) if losses else None,
        "checkpoint": str(last),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n" + "=" * 78)
    print(f"Demo: {cfg.policy} trained from scratch on {report['episodes']} expert demos of {cfg.task}")
    if losses:
        print(
            f"  training loss   {losses[0][1]:.3f} (step {losses[0][0]}) -> {losses[-1][1]:.3f} (step {losses[-1][0]})"
        )
        print(f"  loss curve      {curve}")
    for t in per_task:
        print(f"  success         {t['task']}: {t['success_rate']:.0f}% of {t['episodes']} episodes")
        for v in t["videos"][:3]:
            print(f"  video           {v}")
    print(
        f"  overall success {summary['success_rate']:.1f}% ({summary['eval_episodes']} episodes, lerobot-eval seed {cfg.seed})"
    )
    print(f"  checkpoint      {last}")
    print(
        f"  time            data {timings['data_s']:.0f} s, train {timings['train_s']:.0f} s, eval {timings['eval_s']:.0f} s"
    )
    print("=" * 78)
    return 0


if __name__ == "__main__":
    sys.exit(main())
