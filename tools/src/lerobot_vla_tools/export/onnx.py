"""ONNX export of a policy's per-chunk inference, and an onnxruntime runner that replaces it.

One *chunk graph* is the whole computation ``predict_action_chunk`` does for one observation: vision towers,
language model, action head (with the flow-matching head's Euler loop unrolled), on the tensors the policy's
preprocessor produces (``observation.images.*``, ``observation.state``), returning the normalised chunk
``(B, T, A)``. It is traced with ``torch.onnx.export(dynamo=True)`` (``torch.export``, strict=False) at a fixed
batch size and a fixed task prompt: tokenisation is Python and runs at trace time, so the prompt's token ids are
constants of the graph (:class:`OnnxChunkRunner` refuses another prompt).

What each policy exports (:data:`EXPORTED`):

* ``vla_adapter``: Prismatic backbone + Bridge Attention head (deterministic regression).
* ``a1``: full depth, flow-matching head with its ``num_inference_steps`` Euler steps (eq. 2 of A1) from a
  ``noise`` input ``(B, T, A_pad)``, so eager and ONNX agree exactly given the same noise; the MLP head is
  deterministic. Early exit is data-dependent control flow and is not exported (the graph is full depth). On a
  Molmo or an InternVL backbone (``backbone_family``).
* ``seer``: the first step of an episode (history of one frame; the history window is not an input yet).
* ``vita_vla``: the first step of an episode (history of one frame, padded to ``history_length`` turns with it
  under ``pad_history``): vision tower + projector, InternVL language model over the turns prompt, action mapper
  and action head. Later steps' longer history is not an input (the turns prompt grows with it).

LeRobot's ``evo1`` samples its noise inside ``predict_action_chunk`` (no noise input to make parity
deterministic).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from lerobot.policies.pretrained import PreTrainedPolicy

#: policy types with a chunk graph, and what is in it (written into the export's metadata)
EXPORTED = {
    "vla_adapter": "backbone + Bridge Attention head",
    "a1": "backbone + head at full depth (flow matching: Euler loop from the noise input)",
    "seer": "encoders + trunk + decoder, first step of an episode (history of one frame)",
    "vita_vla": "backbone + action mapper + action head, first step of an episode (history of one frame)",
}
#: why the other policy types of this collection (and evo1) have none
NOT_EXPORTED = {
    "evo1": "LeRobot's evo1 draws its noise inside predict_action_chunk (no noise input for deterministic parity)",
}


def _a1_chunk(policy, batch: dict, noise: Tensor | None) -> Tensor:
    """A1 at full depth from ``noise`` (B, T, A_pad) (flow matching), as ``A1Model.predict_full_depth``."""
    m = policy.model
    if not m.is_flow_matching:
        return policy.predict_action_chunk(batch)
    state = m.pad_state(batch)
    inputs = m.prefix(batch, state)
    out = m.backbone.stack.run(inputs, collect_kv=True, final_norm=False)
    prefix = [m.head.prefix_kv(i, kv) for i, kv in enumerate(out.key_values)]
    steps = policy.config.num_inference_steps
    return m._sample(prefix, inputs.attention_mask, state, steps, noise, None)[..., : m.action_dim]


def _a1_noise_shape(policy, batch_size: int) -> tuple[int, ...] | None:
    if not policy.model.is_flow_matching:
        return None
    return (batch_size, policy.config.chunk_size, policy.config.max_action_dim)


def _default_chunk(policy, batch: dict, noise: Tensor | None) -> Tensor:
    return policy.predict_action_chunk(batch)


#: policy type -> (chunk function(policy, batch, noise), noise shape(policy, B) or None)
CHUNK_FUNCTIONS: dict[str, tuple[Callable, Callable]] = {
    "a1": (_a1_chunk, _a1_noise_shape),
    "vla_adapter": (_default_chunk, lambda policy, b: None),
    "seer": (_default_chunk, lambda policy, b: None),
    "vita_vla": (_default_chunk, lambda policy, b: None),
}


def export_refusal(policy_type: str) -> str | None:
    """Why a policy of ``policy_type`` has no chunk graph, or None."""
    if policy_type not in CHUNK_FUNCTIONS:
        why = NOT_EXPORTED.get(policy_type, "no chunk graph is defined for it")
        return f"{policy_type}: no ONNX export ({why}); exported policy types: {', '.join(sorted(CHUNK_FUNCTIONS))}"
    return None


def check_exportable(policy_type: str) -> None:
    """Raise ValueError with :func:`export_refusal`'s reason when there is no chunk graph."""
    why = export_refusal(policy_type)
    if why is not None:
        raise ValueError(why)


def tensor_keys(batch: dict) -> list[str]:
    """The preprocessed batch entries that become graph inputs: its tensors, in batch order."""
    return [k for k, v in batch.items() if isinstance(v, Tensor)]


class ChunkGraph(nn.Module):
    """``forward(*tensors[, noise]) -> (B, T, A)``: one chunk of ``policy`` from the tensors of a preprocessed
    batch (``keys`` order); the batch's other entries (the task prompt) come from ``template``. The policy is reset
    first (a stateless graph: no action queue, no history across calls)."""

    def __init__(self, policy, template: dict, keys: list[str], with_noise: bool):
        super().__init__()
        self.policy = policy
        self.template = {k: v for k, v in template.items() if k not in keys}
        self.keys = keys
        self.with_noise = with_noise
        self.chunk_fn = CHUNK_FUNCTIONS[policy.config.type][0]

    def forward(self, *inputs: Tensor) -> Tensor:
        tensors, noise = (inputs[:-1], inputs[-1]) if self.with_noise else (inputs, None)
        self.policy.reset()
        batch = {**self.template, **dict(zip(self.keys, tensors, strict=True))}
        return self.chunk_fn(self.policy, batch, noise).float()


@dataclass
class ExportInfo:
    """What an export wrote next to the ``.onnx`` file (``<name>.json``)."""

    policy_type: str
    graph: str
    input_names: list[str]
    input_shapes: list[list[int]]
    output_shape: list[int]
    task: str | None
    opset: int
    parity_max_abs_diff: float | None = None


def make_noise(policy: PreTrainedPolicy, batch_size: int, seed: int = 0) -> Tensor | None:
    """Fixed standard-normal noise of the shape the policy's chunk graph takes, or None (deterministic head)."""
    shape = CHUNK_FUNCTIONS[policy.config.type][1](policy, batch_size)
    if shape is None:
        return None
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def batch_task(batch: dict) -> str | None:
    """The one task prompt of ``batch`` (None without one); ValueError when its samples differ."""
    task = batch.get("task")
    if isinstance(task, (list, tuple)):
        if len(set(task)) > 1:
            raise ValueError("export: every sample of the example batch must have the same task prompt")
        return task[0] if task else None
    return task


def eager_chunk(policy: PreTrainedPolicy, batch: dict[str, Any], noise: Tensor | None = None) -> Tensor:
    """The chunk the eager policy computes for ``batch`` (and ``noise``), as the chunk graph does."""
    keys = tensor_keys(batch)
    graph = ChunkGraph(policy, batch, keys, noise is not None)
    with torch.inference_mode():
        return graph(*(batch[k] for k in keys), *([noise] if noise is not None else []))


def export_chunk_graph(
    policy: PreTrainedPolicy, batch: dict[str, Any], path: str | Path, opset: int = 18
) -> ExportInfo:
    """Export ``policy``'s chunk graph for preprocessed ``batch`` to ``path`` (``.onnx``) and its
    :class:`ExportInfo` to ``path`` with suffix ``.json``.

    Args:
        policy: an eval-mode policy on CPU in float32.
        batch: a preprocessed observation batch (what ``predict_action_chunk`` receives); its batch size and task
            prompt are fixed in the graph.
    """
    check_exportable(policy.config.type)
    policy.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = tensor_keys(batch)
    bsz = batch[keys[0]].shape[0]
    noise = make_noise(policy, bsz)
    args = tuple(batch[k] for k in keys) + ((noise,) if noise is not None else ())
    names = keys + (["noise"] if noise is not None else [])
    graph = ChunkGraph(policy, batch, keys, noise is not None).eval()
    with torch.no_grad():
        out = graph(*args)
        torch.onnx.export(
            graph,
            args,
            str(path),
            dynamo=True,
            input_names=names,
            output_names=["actions"],
            opset_version=opset,
        )
    info = ExportInfo(
        policy_type=policy.config.type,
        graph=EXPORTED[policy.config.type],
        input_names=names,
        input_shapes=[list(a.shape) for a in args],
        output_shape=list(out.shape),
        task=batch_task(batch),
        opset=opset,
    )
    path.with_suffix(".json").write_text(json.dumps(asdict(info), indent=1))
    return info


class OnnxChunkRunner:
    """An exported chunk graph on onnxruntime's CPU execution provider.

    ``runner(batch, noise=None) -> (B, T, A)`` takes the same preprocessed batch as the policy (and, for
    flow-matching graphs, the noise; fresh standard-normal noise when None).
    """

    def __init__(self, path: str | Path, num_threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        self.info = ExportInfo(**json.loads(path.with_suffix(".json").read_text()))
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def feeds(self, batch: dict, noise: Tensor | None = None) -> dict[str, Any]:
        """The onnxruntime inputs for ``batch``; raises ValueError naming a missing input, a shape or a prompt
        that differs from the export."""
        task = batch_task(batch)
        if self.info.task is not None and task is not None and task != self.info.task:
            raise ValueError(
                f"onnx chunk graph: exported for the task {self.info.task!r}, got {task!r}; the prompt is part of "
                "the graph: export again with --task"
            )
        feeds = {}
        for name, shape in zip(self.info.input_names, self.info.input_shapes, strict=True):
            if name == "noise":
                value = noise if noise is not None else torch.randn(shape)
            elif name in batch:
                value = batch[name]
            else:
                raise ValueError(
                    f"onnx chunk graph: the batch has no {name!r} (inputs: {self.info.input_names})"
                )
            if list(value.shape) != shape:
                raise ValueError(
                    f"onnx chunk graph: {name} has shape {list(value.shape)}, the graph was exported for {shape} "
                    "(batch size and image sizes are fixed at export)"
                )
            feeds[name] = value.detach().cpu().numpy()
        return feeds

    def __call__(self, batch: dict, noise: Tensor | None = None) -> Tensor:
        (out,) = self.session.run(["actions"], self.feeds(batch, noise))
        return torch.from_numpy(out)


def parity(policy: PreTrainedPolicy, batch: dict[str, Any], runner: OnnxChunkRunner) -> float:
    """Max absolute difference between the eager chunk and the ONNX chunk for ``batch`` (same fixed noise)."""
    noise = make_noise(policy, batch[tensor_keys(batch)[0]].shape[0], seed=1)
    ref = eager_chunk(policy, batch, noise)
    return float((runner(batch, noise) - ref).abs().max())
