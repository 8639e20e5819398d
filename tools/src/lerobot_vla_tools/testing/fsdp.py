"""One FSDP training step of a tiny policy on CPU processes (gloo), configured by a shipped accelerate config.

Each process reads the config exactly as ``accelerate launch`` exports it (``training.accelerate.launch_env``),
builds accelerate's ``FullyShardedDataParallelPlugin`` from that environment, lets it find the layer classes to
wrap in the policy (``set_auto_wrap_policy``), wraps the policy with PyTorch FSDP using the plugin's settings,
and runs forward, backward and an optimizer step on its own batch. LeRobot 0.6.1 builds its ``Accelerator`` with
``cpu=True`` on CPU, which disables FSDP, so this is the closest CPU check of the sharded path: the wrapping,
the sharded forward/backward with frozen and trainable parameters mixed, and the gathered full state dict
LeRobot saves. ``sync_module_states`` needs GPUs and is switched off here (every process seeds the same init).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lerobot_policy_a1.modeling_a1 import A1Policy
    from lerobot_policy_vita_vla.modeling_vita_vla import VitaVlaPolicy

#: Makes the batch of one process from its seed.
BatchMaker = Callable[[int], dict[str, Any]]


def tiny_a1(vlm_name: str) -> tuple[A1Policy, BatchMaker]:
    """A tiny A1 (flow-matching head over every layer's K/V, random exit training) and its batch maker."""
    from lerobot_policy_a1.configuration_a1 import A1Config
    from lerobot_policy_a1.modeling_a1 import A1Policy

    from lerobot_vla_plugins.features import metaworld_policy_features
    from lerobot_vla_tools.testing.molmo import TINY_A1_EXPERT

    inputs, outputs = metaworld_policy_features()
    cfg = A1Config(
        input_features=dict(inputs),
        output_features=dict(outputs),
        backbone_family="molmo",
        vlm_name=vlm_name,
        **TINY_A1_EXPERT,
        exit_interval=1,
        exit_training="all",
        gradient_checkpointing=True,
        device="cpu",
        push_to_hub=False,
    )

    def batch(seed: int):
        import torch

        g = torch.Generator().manual_seed(seed)
        return {
            "observation.image": torch.rand(2, 3, 64, 64, generator=g),
            "observation.state": torch.randn(2, 4, generator=g),
            "action": torch.randn(2, cfg.chunk_size, 4, generator=g),
            "action_is_pad": torch.zeros(2, cfg.chunk_size, dtype=torch.bool),
            "task": ["press the button from the top"] * 2,
        }

    return A1Policy(cfg), batch


def tiny_vita_vla(vlm_path: str, teacher_path: str) -> tuple[VitaVlaPolicy, BatchMaker]:
    """A tiny VITA-VLA fine-tuned as in stage 2 (``only_finetune``: language model, state encoder, action token,
    mapper and decoder train; vision tower and projector frozen) and its batch maker."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot_policy_vita_vla.configuration_vita_vla import VitaVlaConfig
    from lerobot_policy_vita_vla.modeling_vita_vla import VitaVlaPolicy

    cfg = VitaVlaConfig(
        stage="only_finetune",
        vlm_path=vlm_path,
        vlm_dtype="float32",
        vlm_image_size=56,
        history_length=2,
        teacher_path=teacher_path,
        gradient_checkpointing=True,
        device="cpu",
        push_to_hub=False,
    )
    cfg.input_features = {
        "observation.image": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 64, 64)),
        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(4,)),
    }
    cfg.output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(4,))}
    policy = VitaVlaPolicy(cfg)

    def batch(seed: int):
        import torch

        g = torch.Generator().manual_seed(seed)
        t, n_act = len(cfg.observation_delta_indices), len(cfg.action_delta_indices)
        return {
            "observation.image": torch.rand(2, t, 3, 64, 64, generator=g),
            "observation.state": torch.randn(2, t, 4, generator=g),
            "observation.state_is_pad": torch.zeros(2, t, dtype=torch.bool),
            "action": torch.rand(2, n_act, 4, generator=g) * 2 - 1,
            "action_is_pad": torch.zeros(2, n_act, dtype=torch.bool),
            "task": ["press the button from the top"] * 2,
        }

    return policy, batch


BUILDERS = {"a1": tiny_a1, "vita_vla": tiny_vita_vla}


def _worker(rank: int, world: int, port: int, env: dict, build: str, kwargs: dict, out: str) -> None:
    os.environ.update(env)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )
    import torch
    import torch.distributed as dist
    from accelerate.utils import FullyShardedDataParallelPlugin
    from safetensors.torch import save_file
    from torch.distributed.fsdp import (  # noqa: N817
        FullStateDictConfig,
        FullyShardedDataParallel as FSDP,
        StateDictType,
    )

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        policy, make_batch = BUILDERS[build](**kwargs)
        policy.train()
        layer_cls = os.environ["FSDP_TRANSFORMER_CLS_TO_WRAP"].split(",")
        layers = [n for n, m in policy.named_modules() if type(m).__name__ in layer_cls]
        frozen = {n: p.detach().clone() for n, p in policy.named_parameters() if not p.requires_grad}
        trainable = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}

        plugin = (
            FullyShardedDataParallelPlugin()
        )  # reads ACCELERATE_USE_FSDP / FSDP_* as under accelerate launch
        plugin.set_auto_wrap_policy(policy)
        plugin.set_mixed_precision(os.environ["ACCELERATE_MIXED_PRECISION"])
        model = FSDP(
            policy,
            auto_wrap_policy=plugin.auto_wrap_policy,
            sharding_strategy=plugin.sharding_strategy,
            use_orig_params=plugin.use_orig_params,
            mixed_precision=plugin.mixed_precision_policy,
            backward_prefetch=plugin.backward_prefetch,
            device_id=torch.device("cpu"),
        )
        units = [
            n
            for n, m in model.named_modules()
            if isinstance(m, FSDP) and type(m.module).__name__ in layer_cls
        ]
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        loss, _ = model(make_batch(seed=rank))
        loss.backward()
        optimizer.step()
        with FSDP.state_dict_type(
            model, StateDictType.FULL_STATE_DICT, FullStateDictConfig(offload_to_cpu=False, rank0_only=True)
        ):
            full = model.state_dict()
        report = {
            "rank": rank,
            "layers": layers,
            "units": units,
            "loss": float(loss),
            "shard_numel": sum(p.numel() for p in model.parameters()),
        }
        if rank == 0:
            full = {k: v.float().contiguous() for k, v in full.items()}
            report["frozen_unchanged"] = all(torch.equal(full[n], v.float()) for n, v in frozen.items())
            report["trainable_changed"] = sum(
                not torch.equal(full[n], v.float()) for n, v in trainable.items()
            )
            report["num_trainable"] = len(trainable)
            report["num_frozen"] = len(frozen)
            report["full_numel"] = sum(v.numel() for v in full.values())
            save_file(full, str(Path(out) / "full_state_dict.safetensors"))
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(report))
    finally:
        dist.destroy_process_group()


def run_fsdp_step(
    build: str, kwargs: dict, config_file: str | Path, out: str | Path, num_processes: int = 2
) -> list[dict]:
    """Run one sharded training step of ``BUILDERS[build](**kwargs)`` on ``num_processes`` CPU processes.

    Returns each rank's report: decoder ``layers`` of the policy, FSDP ``units`` wrapping them, ``loss``,
    ``shard_numel`` (parameters this rank holds) and, on rank 0, checks on the gathered full state dict.
    """
    import torch.multiprocessing as mp

    from lerobot_vla_tools.testing.ddp import free_port
    from lerobot_vla_tools.training.accelerate import launch_env

    env = launch_env(config_file, f"--num_processes={num_processes}")
    env["FSDP_SYNC_MODULE_STATES"] = "false"  # needs GPUs; every process starts from the same seed instead
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    mp.spawn(
        _worker,
        args=(num_processes, free_port(), env, build, kwargs, str(out)),
        nprocs=num_processes,
        join=True,
    )
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(num_processes)]
