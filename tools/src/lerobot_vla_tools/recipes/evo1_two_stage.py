"""Evo-1's two-stage training as one command (``lerobot-vla-evo1-recipe``), on LeRobot's own ``evo1``.

Evo-1 (paper Sec. 3.3; supplement Sec. 1.1, Tables 1-2) trains in two stages:

* stage 1, action-expert alignment: the whole InternVL3 backbone frozen, the integration module and the action
  expert trained (LeRobot: ``--policy.training_stage=stage1``, which freezes ``model.embedder``);
* stage 2, full fine-tuning: everything trained, starting from stage 1's final weights with a fresh optimizer
  and schedule (official: ``--resume --resume_pretrain``; LeRobot: a new ``lerobot-train`` run with
  ``--policy.path=<stage 1 checkpoint> --policy.training_stage=stage2``).

Both stages run ``lerobot-train`` with the supplement's Meta-World hyperparameters as defaults: learning rate
1e-5, batch 16, 10k + 65k steps, 1k warm-up steps, gradient clipping 1.0, weight decay 1e-3, log every 10 steps,
horizon 50, state and action padded to 24, dropout 0.2, 448x448 images, augmentation on, 8 DiT layers.

Two things follow the official training code rather than LeRobot's defaults:

* Stage 2 keeps the VLM's weights in float32 (``--policy.vlm_dtype=float32``) and computes in bfloat16 autocast on
  GPU (``--policy.use_amp=true``): the official run (DeepSpeed ZeRO-2, ``bf16.enabled``) computes in bfloat16 and keeps
  float32 master weights for the optimizer. LeRobot's default ``vlm_dtype=bfloat16`` stores and updates the VLM in
  bfloat16, where an AdamW step at lr 1e-5 (about 1e-5 per weight) is below the spacing of most weights and is lost.
  Stage 1 keeps the frozen VLM in bfloat16 (it is never updated).
* ``--augmentation=official`` (default): each camera frame goes through the official loader's image path
  (``recipes/evo1_augmentation.py``: half the frames randomly cropped to 95-100 % of the area, rotated by up to 5
  degrees and colour-jittered with 0.3 / 0.4 / 0.5 / 0.08, the other half only resized). ``lerobot`` uses LeRobot's
  default dataset transforms, ``none`` turns augmentation off. Each stage therefore runs ``lerobot-train`` through
  ``python -m lerobot_vla_tools.recipes.evo1_train``, which registers that transform first.

Resumable: the output directory holds ``stage1/`` and ``stage2/`` (ordinary ``lerobot-train`` run directories).
Running the same command again skips a finished stage and resumes an interrupted one from its last checkpoint
(``--config_path=.../train_config.json --resume=true``); raising ``--stage2_steps`` continues stage 2.

Usage::

    lerobot-vla-evo1-recipe --dataset.repo_id=local/metaworld_mt50 --dataset.root=data/metaworld_mt50 \\
        --output_dir=outputs/evo1_metaworld [--stage1_steps=10000 --stage2_steps=65000 --batch_size=16] \\
        [any lerobot-train option, e.g. --policy.device=cuda --num_workers=8 --wandb.enable=true] \\
        [--stage2.policy.push_to_hub=true --stage2.policy.repo_id=me/evo1_metaworld]

Options that are not the recipe's own are passed to ``lerobot-train`` for both stages; prefix them with
``--stage1.`` or ``--stage2.`` to pass them to one stage only. ``--dry_run=true`` prints the commands.
``--num_processes=8`` runs each stage under ``accelerate launch --multi_gpu``; the global batch is ``--batch_size`` x
processes, and the authors trained with 8 GPUs x 16 = 128 (their answers in MINT-SJTU/Evo-1 issues #16 and #32), so
the defaults (1 process x 16) train with a global batch 8 times smaller unless ``--num_processes=8`` is given.
``--accelerate_config=<file>`` uses an accelerate config (multi-node, FSDP).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

#: Supplement Table 1 (optimisation, both stages) and Table 2 (model and input) for Meta-World.
PAPER = {
    "stage1_steps": 10_000,
    "stage2_steps": 65_000,
    "batch_size": 16,
    "lr": 1e-5,
    "warmup_steps": 1_000,
    "grad_clip_norm": 1.0,
    "weight_decay": 1e-3,
    "log_freq": 10,
    "horizon": 50,
    "pad_dim": 24,
    "dropout": 0.2,
    "image_size": 448,
    "dit_layers": 8,
    "augmentation": "official",
}
#: The authors' setup (MINT-SJTU/Evo-1 issues #16, #32): 8 GPUs x 16 per GPU = global batch 128.
AUTHORS_GPUS = 8
#: --augmentation: the official loader's image path, LeRobot's default dataset transforms, or none.
AUGMENTATIONS = ("official", "lerobot", "none")
#: Stage 2: float32 VLM weights (the optimizer's master copy) with bfloat16 autocast on GPU, as the official
#: DeepSpeed bf16 run; stage 1 keeps LeRobot's bfloat16 storage for the frozen VLM.
STAGE2_PRECISION = {"--policy.vlm_dtype": "float32", "--policy.use_amp": "true"}
#: The stage command: lerobot-train with the Evo1Augmentation transform type registered.
TRAIN_MODULE = "lerobot_vla_tools.recipes.evo1_train"


@dataclass
class RecipeConfig:
    dataset_repo_id: str
    dataset_root: str | None
    output_dir: Path
    stage1_steps: int = PAPER["stage1_steps"]
    stage2_steps: int = PAPER["stage2_steps"]
    batch_size: int = PAPER["batch_size"]
    lr: float = PAPER["lr"]
    warmup_steps: int = PAPER["warmup_steps"]
    grad_clip_norm: float = PAPER["grad_clip_norm"]
    weight_decay: float = PAPER["weight_decay"]
    dropout: float = PAPER["dropout"]
    log_freq: int = PAPER["log_freq"]
    save_freq: int = 5_000
    augmentation: str = PAPER["augmentation"]
    #: run stage 1 only ("1") or both ("2")
    until_stage: int = 2
    #: training processes per stage: > 1 runs each stage under ``accelerate launch --multi_gpu``. Global batch =
    #: batch_size x num_processes (LeRobot does not scale the learning rate); the authors: 8 GPUs x 16 = 128.
    num_processes: int = 1
    #: an accelerate config file for both stages (multi-node, FSDP...), passed as ``--config_file``
    accelerate_config: str | None = None
    dry_run: bool = False
    #: lerobot-train options for both stages / for one stage ("--key=value" strings)
    extra: list[str] = field(default_factory=list)
    stage_extra: dict[int, list[str]] = field(default_factory=lambda: {1: [], 2: []})


def global_batch_note(cfg: RecipeConfig) -> str:
    """The global batch of the run next to the authors' (8 GPUs x 16 = 128)."""
    ours = cfg.batch_size * cfg.num_processes
    authors = AUTHORS_GPUS * PAPER["batch_size"]
    note = f"global batch {cfg.batch_size} x {cfg.num_processes} process(es) = {ours}"
    note += f" (the authors: {AUTHORS_GPUS} GPUs x {PAPER['batch_size']} = {authors})"
    if ours != authors:
        note += f"; --num_processes={AUTHORS_GPUS} --batch_size={PAPER['batch_size']} trains as they did"
    return note


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_args(argv: list[str]) -> RecipeConfig:
    """The recipe's options; every other ``--key=value`` is kept for ``lerobot-train``."""
    p = argparse.ArgumentParser(prog="lerobot-vla-evo1-recipe", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset.repo_id", dest="repo_id", required=True)
    p.add_argument("--dataset.root", dest="root", default=None)
    p.add_argument("--output_dir", required=True)
    for name in ("stage1_steps", "stage2_steps", "batch_size", "warmup_steps", "log_freq", "save_freq"):
        p.add_argument(f"--{name}", type=int, default=RecipeConfig.__dataclass_fields__[name].default)
    for name in ("lr", "grad_clip_norm", "weight_decay", "dropout"):
        p.add_argument(f"--{name}", type=float, default=RecipeConfig.__dataclass_fields__[name].default)
    p.add_argument("--augmentation", choices=AUGMENTATIONS, default=PAPER["augmentation"])
    p.add_argument("--until_stage", type=int, choices=(1, 2), default=2)
    p.add_argument("--dry_run", type=_bool, default=False)
    p.add_argument(
        "--num_processes",
        type=int,
        default=1,
        help="training processes (GPUs) per stage; global batch = --batch_size x this. The authors: 8 x 16 = 128",
    )
    p.add_argument("--accelerate_config", default=None)
    args, rest = p.parse_known_args(argv)
    if args.num_processes < 1:
        p.error(f"--num_processes must be >= 1 (got {args.num_processes})")
    if args.accelerate_config is not None and not Path(args.accelerate_config).is_file():
        p.error(
            f"--accelerate_config={args.accelerate_config}: no such file (see `lerobot-vla-accelerate-config`)"
        )
    for name in ("stage1_steps", "stage2_steps", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1 (got {getattr(args, name)})")
    extra, stage_extra = [], {1: [], 2: []}
    for item in rest:
        if not item.startswith("--") or "=" not in item:
            p.error(f"unrecognised argument {item!r}: lerobot-train options are passed as --key=value")
        for stage in (1, 2):
            if item.startswith(f"--stage{stage}."):
                stage_extra[stage].append("--" + item.removeprefix(f"--stage{stage}."))
                break
        else:
            extra.append(item)
    for item in extra + stage_extra[1] + stage_extra[2]:
        key = item.split("=", 1)[0]
        if key in (
            "--output_dir",
            "--steps",
            "--resume",
            "--config_path",
            "--policy.path",
            "--policy.type",
            "--policy.training_stage",
            "--dataset.repo_id",
            "--dataset.root",
        ):
            p.error(f"{key} is set by the recipe for each stage; use the recipe's own options instead")
    return RecipeConfig(
        dataset_repo_id=args.repo_id,
        dataset_root=args.root,
        output_dir=Path(args.output_dir),
        stage1_steps=args.stage1_steps,
        stage2_steps=args.stage2_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        grad_clip_norm=args.grad_clip_norm,
        weight_decay=args.weight_decay,
        dropout=args.dropout,
        log_freq=args.log_freq,
        save_freq=args.save_freq,
        augmentation=args.augmentation,
        until_stage=args.until_stage,
        dry_run=args.dry_run,
        extra=extra,
        stage_extra=stage_extra,
        num_processes=args.num_processes,
        accelerate_config=args.accelerate_config,
    )


# ---------------------------------------------------------------------------------------------- planning


def last_step(run_dir: Path) -> int | None:
    """The step of ``run_dir``'s last checkpoint, None when it has none."""
    path = run_dir / "checkpoints" / "last" / "training_state" / "training_step.json"
    if not path.is_file():
        return None
    return int(json.loads(path.read_text())["step"])


def _merge(defaults: dict[str, str], *overrides: list[str]) -> list[str]:
    """``--key=value`` list: the defaults, each replaced by a user option with the same key (kept in order)."""
    merged = dict(defaults)
    for items in overrides:
        for item in items:
            key, value = item.split("=", 1)
            merged.pop(key, None)
            merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


def image_size(cfg: RecipeConfig) -> int:
    """The policy's image side: a ``--policy.image_resolution=[S,S]`` given for both stages or stage 1, else 448."""
    for item in [*cfg.extra, *cfg.stage_extra[1]]:
        key, _, value = item.partition("=")
        if key == "--policy.image_resolution":
            return int(json.loads(value)[0])
    return PAPER["image_size"]


def augmentation_options(augmentation: str, size: int = PAPER["image_size"]) -> dict[str, str]:
    """``--dataset.image_transforms.*`` options of ``--augmentation`` (``official``, ``lerobot`` or ``none``).

    ``official``: one transform, :class:`~lerobot_vla_tools.recipes.evo1_augmentation.Evo1Augmentation` (which draws
    its own 50 % coin), producing ``size`` x ``size`` frames (the policy's resolution).
    """
    from .evo1_augmentation import TRANSFORM_NAME

    if augmentation == "none":
        return {"--dataset.image_transforms.enable": "false"}
    if augmentation == "lerobot":
        return {"--dataset.image_transforms.enable": "true"}
    tfs = {"evo1": {"weight": 1.0, "type": TRANSFORM_NAME, "kwargs": {"size": size, "p": 0.5}}}
    return {
        "--dataset.image_transforms.enable": "true",
        "--dataset.image_transforms.max_num_transforms": "1",
        "--dataset.image_transforms.tfs": json.dumps(tfs, separators=(",", ":")),
    }


def hyperparameters(cfg: RecipeConfig) -> dict[str, str]:
    """The supplement's settings as lerobot-train options shared by both stages."""
    return {
        "--batch_size": str(cfg.batch_size),
        "--log_freq": str(cfg.log_freq),
        "--save_freq": str(cfg.save_freq),
        **augmentation_options(cfg.augmentation, image_size(cfg)),
        "--policy.optimizer_lr": str(cfg.lr),
        "--policy.scheduler_warmup_steps": str(cfg.warmup_steps),
        "--policy.optimizer_grad_clip_norm": str(cfg.grad_clip_norm),
        "--policy.optimizer_weight_decay": str(cfg.weight_decay),
        "--policy.dropout": str(cfg.dropout),
        "--policy.push_to_hub": "false",
    }


def _model_settings() -> dict[str, str]:
    """Supplement Table 2: the model and input settings stage 1 creates the policy with (stage 2 inherits them)."""
    return {
        "--policy.chunk_size": str(PAPER["horizon"]),
        "--policy.n_action_steps": str(PAPER["horizon"]),
        "--policy.max_state_dim": str(PAPER["pad_dim"]),
        "--policy.max_action_dim": str(PAPER["pad_dim"]),
        "--policy.image_resolution": f"[{PAPER['image_size']},{PAPER['image_size']}]",
        "--policy.num_layers": str(PAPER["dit_layers"]),
    }


@dataclass
class Step:
    """One lerobot-train invocation of the plan (or a stage that is already done)."""

    stage: int
    action: str  # "train", "resume" or "done"
    args: list[str]
    reset_dir: bool = False  # remove a stage directory that holds no checkpoint (an aborted start)


def plan(cfg: RecipeConfig) -> list[Step]:
    """What to run, from the state of ``output_dir``: fresh, resume or skip each stage.

    Raises:
        ValueError: the directory holds a stage-2 run but stage 1 is unfinished, or a stage ran further
            than asked (the message says which option to raise).
    """
    dataset = [f"--dataset.repo_id={cfg.dataset_repo_id}"] + (
        [f"--dataset.root={cfg.dataset_root}"] if cfg.dataset_root else []
    )
    steps: list[Step] = []
    stage_dirs = {1: cfg.output_dir / "stage1", 2: cfg.output_dir / "stage2"}
    targets = {1: cfg.stage1_steps, 2: cfg.stage2_steps}
    done = {s: last_step(d) for s, d in stage_dirs.items()}
    if done[2] is not None and (done[1] is None or done[1] < cfg.stage1_steps):
        raise ValueError(
            f"{stage_dirs[2]} has a stage-2 run but stage 1 stopped at step {done[1]} of {cfg.stage1_steps}; "
            "use a new --output_dir or the --stage1_steps that run used"
        )
    for stage in (1, 2)[: cfg.until_stage]:
        run_dir, target, at = stage_dirs[stage], targets[stage], done[stage]
        if at is not None and at > target:
            raise ValueError(
                f"{run_dir} is already at step {at} > --stage{stage}_steps={target}; pass a larger value"
            )
        if at == target:
            steps.append(Step(stage, "done", []))
            continue
        if at is not None:
            config_path = run_dir / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
            args = [f"--config_path={config_path}", "--resume=true", f"--steps={target}"]
            steps.append(Step(stage, "resume", args + cfg.extra + cfg.stage_extra[stage]))
            continue
        common = hyperparameters(cfg)
        if stage == 1:
            first = {"--policy.type": "evo1", "--policy.training_stage": "stage1", **_model_settings()}
        else:
            stage1_model = stage_dirs[1] / "checkpoints" / "last" / "pretrained_model"
            first = {
                "--policy.path": str(stage1_model),
                "--policy.training_stage": "stage2",
                **STAGE2_PRECISION,
            }
        args = _merge({**first, **common}, cfg.extra, cfg.stage_extra[stage])
        args = dataset + [f"--output_dir={run_dir}", f"--steps={target}"] + args
        steps.append(Step(stage, "train", args, reset_dir=run_dir.exists()))
    return steps


# ---------------------------------------------------------------------------------------------- running


def launcher(cfg: RecipeConfig) -> list[str]:
    """The command prefix of each stage: ``python -m lerobot_vla_tools.recipes.evo1_train`` (``lerobot-train`` with
    the Evo-1 augmentation registered), under ``accelerate launch -m`` for several processes."""
    if cfg.num_processes == 1 and cfg.accelerate_config is None:
        return [sys.executable, "-m", TRAIN_MODULE]
    bin_dir = Path(sys.executable).parent
    accelerate = str(bin_dir / "accelerate") if (bin_dir / "accelerate").exists() else "accelerate"
    cmd = [accelerate, "launch"]
    if cfg.accelerate_config is not None:
        cmd.append(f"--config_file={cfg.accelerate_config}")
    else:
        cmd.append("--multi_gpu")
    cmd.append(f"--num_processes={cfg.num_processes}")
    return [*cmd, "-m", TRAIN_MODULE]


def run(
    cfg: RecipeConfig, runner: Callable[[list[str]], subprocess.CompletedProcess] = subprocess.run
) -> int:
    """Execute the plan; returns the exit status of the first failing lerobot-train (0 when all succeed)."""
    try:
        steps = plan(cfg)
    except ValueError as err:
        print(f"lerobot-vla-evo1-recipe: error: {err}", file=sys.stderr)
        return 2
    print(f"[evo1-recipe] {global_batch_note(cfg)}", flush=True)
    for step in steps:
        name = f"stage {step.stage} ({'VLM frozen' if step.stage == 1 else 'full fine-tuning'})"
        if step.action == "done":
            print(f"[evo1-recipe] {name}: already done", flush=True)
            continue
        cmd = [*launcher(cfg), *step.args]
        print(f"[evo1-recipe] {name}: {step.action}\n  {shlex.join(cmd)}", flush=True)
        if cfg.dry_run:
            continue
        if step.reset_dir:
            # lerobot-train refuses an existing output_dir without --resume; this one has no checkpoint to lose.
            print(
                f"[evo1-recipe] removing {cfg.output_dir / f'stage{step.stage}'} (an aborted start, no checkpoint)"
            )
            shutil.rmtree(cfg.output_dir / f"stage{step.stage}")
        rc = runner(cmd).returncode
        if rc != 0:
            print(
                f"[evo1-recipe] {name} failed (exit {rc}); run the same command again to resume",
                file=sys.stderr,
            )
            return rc
    if not cfg.dry_run:
        final = cfg.output_dir / f"stage{cfg.until_stage}" / "checkpoints" / "last" / "pretrained_model"
        print(f"[evo1-recipe] done: --policy.path={final}")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = parse_args(sys.argv[1:] if argv is None else argv)
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
