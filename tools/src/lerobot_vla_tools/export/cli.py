"""``lerobot-vla-export``: a trained policy's per-chunk inference as an ONNX graph, checked against eager.

Examples::

    lerobot-vla-export --policy_path=outputs/train/a1/checkpoints/last/pretrained_model \\
        --output=outputs/export/a1.onnx --task="Press a button from the top"

Writes ``<output>`` (the graph) and ``<output>`` with suffix ``.json`` (input names and shapes, the task prompt,
the measured parity), then prints the max absolute difference between the eager chunk and onnxruntime's for one
observation shaped like the policy's features (random images and state, fixed noise). Exit status 1 when it is
above ``--tolerance``.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import draccus

if TYPE_CHECKING:
    from lerobot.policies.pretrained import PreTrainedPolicy
    from lerobot.processor import PolicyProcessorPipeline


@dataclass
class ExportConfig:
    # A policy checkpoint directory (config.json, model.safetensors, processors), as lerobot-train saves it.
    policy_path: str = ""
    # Where the graph goes (.onnx); its metadata is written next to it (.json).
    output: str = "outputs/export/policy.onnx"
    # The task prompt the graph is exported for (it is part of the graph).
    task: str = "Press a button from the top"
    # Batch size of the graph (fixed).
    batch_size: int = 1
    # Largest accepted |eager - onnx| on the check observation.
    tolerance: float = 1e-4
    opset: int = 18


def load_policy(path: str) -> tuple[PreTrainedPolicy, PolicyProcessorPipeline]:
    """(policy in eval mode on CPU, preprocessor) of the checkpoint at ``path``."""
    import lerobot.policies  # noqa: F401  (registers the built-in policy types)
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()
    cfg = PreTrainedConfig.from_pretrained(path)
    cfg.device = "cpu"
    policy = get_policy_class(cfg.type).from_pretrained(path, config=cfg)
    policy.to("cpu").eval()
    pre, _ = make_pre_post_processors(
        policy.config, pretrained_path=path, preprocessor_overrides={"device_processor": {"device": "cpu"}}
    )
    return policy, pre


def example_batch(
    policy: PreTrainedPolicy, preprocessor: PolicyProcessorPipeline, batch_size: int, task: str, seed: int = 0
) -> dict[str, Any]:
    """A preprocessed observation batch shaped like the policy's input features (random values) with ``task``."""
    import torch

    from lerobot_vla_tools.batches import observation_batch

    obs = observation_batch(policy.config.input_features, batch_size, torch.Generator().manual_seed(seed))
    obs["task"] = [task] * batch_size
    return preprocessor(obs)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    cfg = draccus.parse(ExportConfig, args=sys.argv[1:] if argv is None else argv)
    if not cfg.policy_path or not (Path(cfg.policy_path) / "config.json").is_file():
        print(
            f"lerobot-vla-export: error: --policy_path={cfg.policy_path!r} is not a checkpoint directory "
            "(no config.json); pass the pretrained_model directory lerobot-train saved",
            file=sys.stderr,
        )
        return 2
    if cfg.batch_size < 1:
        print(f"lerobot-vla-export: error: --batch_size={cfg.batch_size} must be >= 1", file=sys.stderr)
        return 2
    from .onnx import OnnxChunkRunner, check_exportable, export_chunk_graph, parity

    policy, pre = load_policy(cfg.policy_path)
    try:
        check_exportable(policy.config.type)
    except ValueError as err:
        print(f"lerobot-vla-export: error: {err}", file=sys.stderr)
        return 2
    batch = example_batch(policy, pre, cfg.batch_size, cfg.task)
    info = export_chunk_graph(policy, batch, cfg.output, opset=cfg.opset)
    runner = OnnxChunkRunner(cfg.output)
    info.parity_max_abs_diff = parity(
        policy, example_batch(policy, pre, cfg.batch_size, cfg.task, seed=1), runner
    )
    Path(cfg.output).with_suffix(".json").write_text(json.dumps(asdict(info), indent=1))
    ok = info.parity_max_abs_diff <= cfg.tolerance
    print(
        f"{info.policy_type}: {info.graph} -> {cfg.output}; max |eager - onnx| = {info.parity_max_abs_diff:.2e} "
        f"({'within' if ok else 'ABOVE'} {cfg.tolerance:g})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
