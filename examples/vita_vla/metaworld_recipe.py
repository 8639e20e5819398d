"""VITA-VLA's recipe on one Meta-World task, from scratch, on a CPU, with LeRobot's own commands:

1. record scripted-expert demonstrations (``lerobot-vla-data metaworld``);
2. build small backbones locally with the testing kit (no download): MAE / CLIP / GPT-2 parts for Seer, a small
   VITA-1.5-shaped InternVL for VITA-VLA (random weights: nothing is pretrained here);
3. ``lerobot-train --policy.type=seer`` (the teacher), then ``lerobot-eval``;
4. ``lerobot-train --policy.type=vita_vla --policy.stage=align --policy.teacher_path=<seer>`` (stage 1), then
   ``--policy.stage=finetune --policy.path=<align>`` (stage 2), then ``lerobot-eval``;
5. loss curves (PNG) and ``summary.json`` (success rates, timings).

Usage::

    python examples/vita_vla/metaworld_recipe.py --output_dir=outputs/vita_vla_recipe
    python examples/vita_vla/metaworld_recipe.py --seer_steps=200 --align_steps=50 --finetune_steps=200 --eval_episodes=2

Each stage is skipped when its output exists (delete the directory, or pass --fresh=true, to redo it).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import draccus
from lerobot_vla_tools.bench.learning_recipes import (  # the learning protocol's too
    SMALL_SEER,
    SMALL_VITA,
)
from lerobot_vla_tools.cli.demo import _run, parse_losses, plot_loss


@dataclass
class RecipeConfig:
    task: str = "button-press-topdown-v3"
    episodes: int = 30
    output_dir: str = "outputs/vita_vla_recipe"
    # Steps of history (both models; the student must match its teacher).
    history_length: int = 2
    seer_steps: int = 2000
    align_steps: int = 300
    finetune_steps: int = 1500
    batch_size: int = 16
    eval_episodes: int = 10
    num_workers: int = 1
    seed: int = 1000
    # Extra flags per stage, e.g. ["--policy.optimizer_lr=3e-4"].
    seer_args: list[str] = field(default_factory=list)
    align_args: list[str] = field(default_factory=list)
    finetune_args: list[str] = field(default_factory=list)
    fresh: bool = False


def _flags(overrides: dict) -> list[str]:
    return [f"--policy.{k}={v}" for k, v in overrides.items()]


def _train(bin_dir: Path, args: list[str], out: Path, log: Path, env: dict, steps: int) -> Path:
    last = out / "checkpoints" / "last" / "pretrained_model"
    if not last.is_dir():
        if out.exists():
            import shutil

            shutil.rmtree(out)
        log_freq = max(1, min(25, steps // 40))
        _run(
            [
                str(bin_dir / "lerobot-train"),
                *args,
                f"--steps={steps}",
                f"--save_freq={steps}",
                f"--log_freq={log_freq}",
                f"--output_dir={out}",
            ],
            log,
            env,
        )
    return last


def _eval(bin_dir: Path, ckpt: Path, out: Path, cfg: RecipeConfig, env: dict) -> dict:
    info = out / "eval_info.json"
    if not info.is_file():
        _run(
            [
                str(bin_dir / "lerobot-eval"),
                f"--policy.path={ckpt}",
                "--env.type=metaworld",
                f"--env.task={cfg.task}",
                f"--eval.n_episodes={cfg.eval_episodes}",
                "--eval.batch_size=1",
                "--eval.use_async_envs=false",
                "--policy.device=cpu",
                f"--output_dir={out}",
                f"--seed={cfg.seed}",
            ],
            out.parent / f"{out.name}.log",
            env,
        )
    return json.loads(info.read_text())["overall"]


def main(argv: list[str] | None = None) -> int:
    cfg = draccus.parse(RecipeConfig, args=sys.argv[1:] if argv is None else argv)
    from lerobot_vla_tools.testing.fixtures import lerobot_env

    out = Path(cfg.output_dir).expanduser().absolute()
    if cfg.fresh and out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    env = lerobot_env(home=out / "hf_lerobot_home")
    os.environ.setdefault("MUJOCO_GL", "egl")
    bin_dir = Path(sys.executable).parent
    timings: dict[str, float] = {}

    t = time.perf_counter()
    data, repo_id = out / "data", f"local/recipe_{cfg.task}"
    if not (data / "meta" / "info.json").is_file():
        _run(
            [
                str(bin_dir / "lerobot-vla-data"),
                "metaworld",
                f"--tasks={cfg.task}",
                f"--episodes_per_task={cfg.episodes}",
                f"--root={data}",
                f"--repo_id={repo_id}",
                "--overwrite=true",
                "--progress=false",
            ],
            out / "data.log",
            env,
        )
    timings["data_s"] = time.perf_counter() - t

    from lerobot_vla_tools.testing.seer import build_tiny_seer_encoders
    from lerobot_vla_tools.testing.vita import build_tiny_vita

    backbones = out / "backbones"
    encoders = (
        build_tiny_seer_encoders(backbones / "seer")
        if not (backbones / "seer" / "clip" / "config.json").is_file()
        else {
            "vision_encoder_name": str(backbones / "seer" / "vit_mae"),
            "text_encoder_name": str(backbones / "seer" / "clip"),
        }
    )
    encoders = {k: encoders[k] for k in ("vision_encoder_name", "text_encoder_name")}
    vita_path = backbones / "vita"
    if not (vita_path / "config.json").is_file():
        build_tiny_vita(vita_path, **SMALL_VITA)

    common = [
        "--policy.device=cpu",
        "--policy.push_to_hub=false",
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={data}",
        f"--batch_size={cfg.batch_size}",
        f"--num_workers={cfg.num_workers}",
        f"--seed={cfg.seed}",
        f"--policy.history_length={cfg.history_length}",
    ]
    runs = {}
    t = time.perf_counter()
    seer = _train(
        bin_dir,
        ["--policy.type=seer", *common, *_flags({**encoders, **SMALL_SEER}), *cfg.seer_args],
        out / "seer",
        out / "seer.log",
        env,
        cfg.seer_steps,
    )
    timings["seer_train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    runs["seer"] = _eval(bin_dir, seer, out / "seer_eval", cfg, env)
    timings["seer_eval_s"] = time.perf_counter() - t

    vita = [
        "--policy.type=vita_vla",
        f"--policy.vlm_path={vita_path}",
        "--policy.vlm_dtype=float32",
        "--policy.vlm_image_size=56",
    ]
    t = time.perf_counter()
    aligned = _train(
        bin_dir,
        [*vita, "--policy.stage=align", f"--policy.teacher_path={seer}", *common, *cfg.align_args],
        out / "align",
        out / "align.log",
        env,
        cfg.align_steps,
    )
    timings["align_train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    finetuned = _train(
        bin_dir,
        [f"--policy.path={aligned}", "--policy.stage=finetune", *common, *cfg.finetune_args],
        out / "finetune",
        out / "finetune.log",
        env,
        cfg.finetune_steps,
    )
    timings["finetune_train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    runs["vita_vla"] = _eval(bin_dir, finetuned, out / "vita_eval", cfg, env)
    timings["vita_eval_s"] = time.perf_counter() - t

    curves = {}
    for name in ("seer", "align", "finetune"):
        log = (out / f"{name}.log").read_text()
        steps = {"seer": cfg.seer_steps, "align": cfg.align_steps, "finetune": cfg.finetune_steps}[name]
        points = parse_losses(log, max(1, min(25, steps // 40)))
        curves[name] = points
        if points:
            plot_loss(points, out / f"loss_{name}.png", f"{name}: training loss ({cfg.task})")
    summary = {
        "task": cfg.task,
        "episodes": cfg.episodes,
        "history_length": cfg.history_length,
        "success": {k: v.get("pc_success") for k, v in runs.items()},
        "eval": runs,
        "timings_s": timings,
        "loss_first_last": {k: (v[0][1], v[-1][1]) for k, v in curves.items() if v},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary["success"]), json.dumps(summary["loss_first_last"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
