"""One training recipe per policy for ``lerobot-vla-bench --protocol=learning``: the tiny backbone it is built on
and the ``lerobot-train`` flags it trains with, the same for every task (nothing is tuned per task).

Every recipe trains from scratch on a backbone the testing kit builds locally with random weights (nothing is
downloaded), so the backbone trains too. The settings are those of each policy's existing one-task "it learns" run
(the runs that learned button-press-topdown-v3 on this CPU), so that the three-task table tests them unchanged:

==============  ==========================================================================================
policy          recipe (its source)
==============  ==========================================================================================
``vla_adapter`` ``policies/lerobot_policy_vla_adapter/scripts/learning_run.sh``: tiny Prismatic (64 px, 8 px
                patches), ``training_mode=full``, 16 ActionQuery, lr 3e-4, 100 warm-up steps, cosine decay over
                the run's steps
``a1``          ``policies/lerobot_policy_a1/scripts/learning_run.sh``: tiny Molmo (56 px), flow-matching
                expert 32 wide, chunk 8, multi-exit training ``all`` at every layer, vision encoder trained, one
                lr 3e-4 for all groups, 100 warm-up steps; evaluated at full depth (no calibration)
``seer``        ``examples/vita_vla/metaworld_recipe.py``: tiny MAE / CLIP encoders, a 64-wide 4-layer trunk,
                2 steps of history, Seer's own optimiser settings (lr 1e-3, 1000 warm-up steps)
``vita_vla``    ``examples/vita_vla/metaworld_recipe.py``: a 128-wide 4-layer VITA-1.5-shaped InternVL run at
                56 px, 2 steps of history; stage 1 ``align`` to the ``seer`` checkpoint of the same run (20 % of
                the steps), then stage 2 ``finetune`` from it (the other 80 %): its student takes the same number
                of optimiser steps as every other policy, on top of its teacher's training
``evo1``        ``lerobot-vla-demo`` (``cli/demo.py:evo1_recipe``): LeRobot's evo1 on a 64 px 4-layer
                InternVL, stage 2 (everything trains), lr 3e-4, 100 warm-up steps
``smolvla``     the tiny bench case (``bench/cases/smolvla.py``: tiny SmolVLM, 4 VLM layers, 32 px, chunk 8)
                with everything trained (``train_expert_only=false``, ``freeze_vision_encoder=false``: its VLM
                is random), lr 3e-4, 100 warm-up steps, cosine decay over the run's steps
==============  ==========================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .runner import _flag_value


@dataclass(frozen=True)
class TrainStage:
    """One ``lerobot-train`` run of a recipe.

    Attributes:
        name: the stage's name (``train``; VITA-VLA: ``align``, ``finetune``).
        flags: its ``--policy.*`` flags beyond those ``prepare`` returns (those go to the first stage only).
        share: fraction of the run's step budget (the last stage takes what the others leave).
        init_from: an earlier stage of this recipe whose checkpoint it starts from (``--policy.path``).
        teacher: ``"<policy>/<stage>"`` whose checkpoint is ``--policy.teacher_path`` (VITA-VLA's Seer).
        decay_over_steps: ``--policy.scheduler_decay_steps`` is this stage's number of steps.
    """

    name: str
    flags: tuple[str, ...] = ()
    share: float = 1.0
    init_from: str | None = None
    teacher: str | None = None
    decay_over_steps: bool = False


@dataclass(frozen=True)
class LearningRecipe:
    """How one policy is trained and evaluated by the learning protocol.

    Attributes:
        policy: the LeRobot policy type (also the table's row label).
        prepare: builds the tiny backbone(s) under a scratch directory; returns the first stage's
            ``--policy.*`` flags (``--policy.type`` included).
        stages: the ``lerobot-train`` runs, in order; the last one's checkpoint is evaluated.
        eval_flags: ``--policy.*`` flags for ``lerobot-eval``.
        loss: what the training loss is (the loss-curve panel's label).
        source: where these settings come from.
    """

    policy: str
    prepare: Callable[[Path], list[str]]
    stages: tuple[TrainStage, ...] = (TrainStage("train"),)
    eval_flags: tuple[str, ...] = ()
    loss: str = "training loss"
    source: str = ""

    def requires(self) -> list[str]:
        """Other policies whose stages this recipe uses (VITA-VLA: ``seer``)."""
        return [s.teacher.split("/")[0] for s in self.stages if s.teacher]

    def stage_steps(self, steps: int) -> dict[str, int]:
        """Steps of each stage for a budget of ``steps`` (they add up to ``steps``).

        Raises:
            ValueError: the budget leaves a stage with no step.
        """
        out: dict[str, int] = {}
        for stage in self.stages[:-1]:
            out[stage.name] = round(stage.share * steps)
        out[self.stages[-1].name] = steps - sum(out.values())
        if min(out.values()) < 1:
            raise ValueError(
                f"--steps={steps} leaves a {self.policy} stage with no step ({out}); give at least {len(out)} steps"
            )
        return out


#: VITA-VLA's share of the steps spent aligning to its teacher (stage 1); the rest is stage 2.
VITA_ALIGN_SHARE = 0.2

#: A Seer small enough to train on a CPU in minutes (the testing kit's trunk sizes, a little wider).
SMALL_SEER = {
    "hidden_dim": 64,
    "num_layers": 4,
    "num_heads": 4,
    "num_resampler_queries": 4,
    "num_foresight_tokens": 4,
    "resampler_depth": 2,
    "resampler_heads": 4,
    "resampler_head_dim": 16,
    "image_decoder_heads": 4,
}
#: Steps of history of Seer and VITA-VLA (the student must match its teacher).
HISTORY_LENGTH = 2
#: VITA-VLA's small VITA-1.5-shaped InternVL (``testing.vita.build_tiny_vita`` sizes).
SMALL_VITA = {"text_hidden_size": 128, "text_intermediate_size": 256, "text_heads": 4, "text_kv_heads": 2}


def policy_flags(overrides: dict) -> list[str]:
    """``{"optimizer_lr": 3e-4}`` -> ``["--policy.optimizer_lr=0.0003"]`` (booleans lower-case, lists ``[a,b]``)."""
    return [f"--policy.{k}={_flag_value(v)}" for k, v in overrides.items()]


def _vla_adapter(scratch: Path) -> list[str]:
    from lerobot_vla_tools.testing.prismatic import build_tiny_prismatic

    vlm = build_tiny_prismatic(scratch / "prismatic", image_size=64, patch_size=8)
    return policy_flags(
        {
            "type": "vla_adapter",
            "vlm_path": vlm,
            "training_mode": "full",
            "num_action_queries": 16,
            "optimizer_lr": 3e-4,
            "scheduler_warmup_steps": 100,
        }
    )


def _a1(scratch: Path) -> list[str]:
    from lerobot_vla_tools.testing.molmo import build_tiny_molmo

    vlm = build_tiny_molmo(scratch / "molmo")
    # From scratch the random backbone must train too: vision encoder on, no VLM freeze, one learning rate.
    return policy_flags(
        {
            "type": "a1",
            "backbone_family": "molmo",
            "vlm_name": vlm,
            "expert_hidden_size": 32,
            "expert_num_heads": 2,
            "expert_intermediate_size": 64,
            "chunk_size": 8,
            "n_action_steps": 8,
            "exit_interval": 1,
            "exit_training": "all",
            "train_vision_encoder": True,
            "optimizer_lr": 3e-4,
            "optimizer_vlm_lr": 3e-4,
            "optimizer_vision_lr": 3e-4,
            "scheduler_warmup_steps": 100,
            "scheduler_vlm_freeze_steps": 0,
        }
    )


def _seer(scratch: Path) -> list[str]:
    from lerobot_vla_tools.testing.seer import build_tiny_seer_encoders

    encoders = build_tiny_seer_encoders(scratch / "encoders")
    encoders = {k: encoders[k] for k in ("vision_encoder_name", "text_encoder_name")}
    return policy_flags({"type": "seer", **encoders, **SMALL_SEER, "history_length": HISTORY_LENGTH})


def _vita_vla(scratch: Path) -> list[str]:
    from lerobot_vla_tools.testing.vita import build_tiny_vita

    vlm = build_tiny_vita(scratch / "vita", **SMALL_VITA)
    return policy_flags(
        {
            "type": "vita_vla",
            "vlm_path": vlm,
            "vlm_dtype": "float32",
            "vlm_image_size": 56,
            "history_length": HISTORY_LENGTH,
        }
    )


def _evo1(scratch: Path) -> list[str]:
    from lerobot_vla_tools.cli.demo import evo1_recipe

    return evo1_recipe(scratch)


def _smolvla(scratch: Path) -> list[str]:
    from lerobot_vla_tools.cli.demo import bench_case_recipe

    # smolvla builds its VLM from the config (random weights here), so the VLM and vision tower train too.
    return bench_case_recipe("smolvla", scratch) + policy_flags(
        {
            "train_expert_only": False,
            "freeze_vision_encoder": False,
            "optimizer_lr": 3e-4,
            "scheduler_warmup_steps": 100,
        }
    )


RECIPES: dict[str, LearningRecipe] = {
    r.policy: r
    for r in (
        LearningRecipe(
            "vla_adapter",
            _vla_adapter,
            stages=(TrainStage("train", decay_over_steps=True),),
            loss="L1 (normalised actions)",
            source="policies/lerobot_policy_vla_adapter/scripts/learning_run.sh",
        ),
        LearningRecipe(
            "a1",
            _a1,
            eval_flags=("--policy.use_early_exit=false",),
            loss="flow matching, mean over the exits",
            source="policies/lerobot_policy_a1/scripts/learning_run.sh",
        ),
        LearningRecipe(
            "seer",
            _seer,
            loss="actions + foresight image",
            source="examples/vita_vla/metaworld_recipe.py",
        ),
        LearningRecipe(
            "vita_vla",
            _vita_vla,
            stages=(
                TrainStage(
                    "align",
                    flags=("--policy.stage=align",),
                    share=VITA_ALIGN_SHARE,
                    teacher="seer/train",
                ),
                TrainStage(
                    "finetune",
                    flags=("--policy.stage=finetune", f"--policy.history_length={HISTORY_LENGTH}"),
                    init_from="align",
                ),
            ),
            loss="align: distance to the teacher; finetune: actions",
            source="examples/vita_vla/metaworld_recipe.py",
        ),
        LearningRecipe(
            "evo1",
            _evo1,
            loss="flow matching",
            source="lerobot-vla-demo (tools/src/lerobot_vla_tools/cli/demo.py: evo1_recipe)",
        ),
        LearningRecipe(
            "smolvla",
            _smolvla,
            stages=(TrainStage("train", decay_over_steps=True),),
            loss="flow matching",
            source="bench case tools/src/lerobot_vla_tools/speed/cases/smolvla.py, everything trained",
        ),
    )
}

#: The order of the table's rows: this collection's policies, then upstream LeRobot's.
POLICY_ORDER = tuple(RECIPES)
