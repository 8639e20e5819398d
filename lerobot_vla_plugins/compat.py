"""The LeRobot APIs that change between the locked 0.6.1 and the development branch (0.6.2), in one place.

What changes (LeRobot ``main`` at commit 7427f31801f944f5ec9ce53cda02862ce7d1638b, version 0.6.2):

- ``PreTrainedPolicy._save_pretrained(self, save_directory)`` loses its ``state_dict`` argument: the policy
  gathers sharded weights itself (a collective, so it is called on every rank; it writes on rank 0 only). Its
  callers pass the directory alone; ``HubMixin.save_pretrained`` (``src/lerobot/utils/hub.py``) does::

      save_directory = Path(save_directory)
      save_directory.mkdir(parents=True, exist_ok=True)

      # save object (weights, files, etc.)
      self._save_pretrained(save_directory)

  0.6.1 calls ``_save_pretrained(save_directory, state_dict=...)`` from its own ``save_pretrained`` override
  (lerobot-train passes the FSDP full state dict). A policy that extends ``_save_pretrained`` calls
  :func:`save_with_lerobot` instead of ``super()._save_pretrained(...)``: it works under both callers.
- ``accelerate launch --config_file`` with ``ACCELERATE_USE_FSDP`` is refused (``lerobot.distributed.factory
  .guard_against_env_interference``): sharding is ``--parallelism.dp_shard=N`` (launched with ``torchrun``), and
  the FSDP wrap units come from the policy class attribute ``_fsdp_wrap_modules`` (``set_fsdp_wrap_modules``).
  Our policies declare it (:data:`QWEN2_WRAP_MODULES`, the units of the shipped ``fsdp_7b`` accelerate config);
  the accelerate-config flow itself cannot work there (:func:`accelerate_env_refused`).
- ``PreTrainedPolicy.push_model_to_hub`` is deprecated for ``lerobot.common.train_utils.publish_trained_model``
  (which also publishes the processors): :func:`publish_policy` calls whichever the installed LeRobot has.

``pyproject.toml`` pins ``lerobot>=0.6.1,<0.6.3``: the versions these shims are tested on
(``tests/test_lerobot_compat.py``; against 0.6.2 by ``scripts/test_lerobot_next.sh``).
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from typing import Any

import torch.distributed as dist
from lerobot.policies.pretrained import PreTrainedPolicy
from torch import Tensor

#: The range of LeRobot versions this collection supports and tests (every pyproject.toml pins it).
LEROBOT_REQUIREMENT = ">=0.6.1,<0.6.3"

#: FSDP wrap units of our Qwen2-based policies (the VLM's and the action expert's decoder layers): the class
#: names the shipped ``fsdp_7b`` accelerate config wraps, declared as ``_fsdp_wrap_modules`` for LeRobot 0.6.2.
QWEN2_WRAP_MODULES: list[str] = ["Qwen2DecoderLayer"]


def save_takes_state_dict() -> bool:
    """Whether the installed ``PreTrainedPolicy._save_pretrained`` takes ``state_dict`` (0.6.1) or not (0.6.2)."""
    return "state_dict" in inspect.signature(PreTrainedPolicy._save_pretrained).parameters


def is_main_process() -> bool:
    """True on rank 0 or outside a distributed run (LeRobot 0.6.2's ``lerobot.distributed.utils`` rule)."""
    return not dist.is_initialized() or dist.get_rank() == 0


def save_with_lerobot(base: Any, save_directory: Path, state_dict: dict[str, Tensor] | None = None) -> None:
    """Call LeRobot's ``PreTrainedPolicy._save_pretrained`` in the convention of the installed version.

    Use it from an override: ``save_with_lerobot(super(), save_directory, state_dict)``. ``state_dict`` (0.6.1:
    the FSDP full state dict lerobot-train gathered) is written when given; on 0.6.2, which gathers itself and
    never passes one, a given ``state_dict`` is written the way 0.6.1 writes it (config + one safetensors file).

    Args:
        base: ``super()`` of the policy (its LeRobot base class, bound to the policy).
        save_directory: the checkpoint directory (``pretrained_model/``).
        state_dict: parameter name -> full tensor, or None to save the policy's own parameters.
    """
    if save_takes_state_dict():
        base._save_pretrained(save_directory, state_dict=state_dict)
    elif state_dict is None:
        base._save_pretrained(save_directory)
    elif is_main_process():
        from huggingface_hub import save_torch_state_dict

        base.__self__.config._save_pretrained(save_directory)
        total_bytes = sum(t.numel() * t.element_size() for t in state_dict.values())
        save_torch_state_dict(state_dict, str(save_directory), max_shard_size=max(total_bytes, 1))


def accelerate_env_refused() -> bool:
    """Whether the installed LeRobot refuses ``accelerate launch --config_file`` (``ACCELERATE_USE_FSDP``) in
    favour of ``--parallelism.dp_shard`` (0.6.2)."""
    try:  # find_spec imports the parent package, which 0.6.1 does not have
        return importlib.util.find_spec("lerobot.distributed.factory") is not None
    except ModuleNotFoundError:
        return False


def publish_policy(
    cfg: Any,
    policy: PreTrainedPolicy,
    preprocessor: Any = None,
    postprocessor: Any = None,
    dataset_meta: Any = None,
    peft_model: Any = None,
) -> None:
    """Publish a trained policy (and its processors, when given) to ``cfg.policy.repo_id`` on the Hub, as
    ``lerobot-train --policy.push_to_hub=true`` does at the end of training with the installed LeRobot."""
    try:
        from lerobot.common.train_utils import publish_trained_model
    except ImportError:  # 0.6.1
        publish_trained_model = None
    if publish_trained_model is not None:
        publish_trained_model(cfg, policy, preprocessor, postprocessor, dataset_meta, peft_model=peft_model)
        return
    policy.push_model_to_hub(cfg, peft_model=peft_model, dataset_meta=dataset_meta)
    for processor in (preprocessor, postprocessor):
        if processor is not None:
            processor.push_to_hub(policy.config.repo_id)
