"""One measurement of one bench case, in a fresh process (``python -m lerobot_vla_tools.speed.worker``).

The harness starts one worker per (case, phase, batch size) so that peak memory is honest: no other case's
allocations (or allocator caches) share the address space. On CPU the peak is the exact weight bytes plus the
peak growth of the resident set size (RSS) during the measured phase over the RSS when it starts (so imports and
construction transients do not count). On CUDA it is ``torch.cuda.max_memory_allocated``, reset after the
policy is built (so it includes the weights, as the papers' "GPU memory during inference" does, but not the
construction transients).

Phases:
    ``infer``: ``policy.select_action`` on a preprocessed observation batch shaped like the policy's features.
        Each repeat resets the action queue and runs one full chunk: the first call refreshes the chunk (the
        "query"), the following ``n_action_steps - 1`` calls pop queued actions.
    ``train``: one optimisation step as ``lerobot-train`` does it (preprocessor, ``policy.forward``, backward,
        gradient clipping, the policy's optimizer preset), on a batch shaped like a dataset batch (action
        chunks from the policy's ``action_delta_indices``).

Usage (the harness writes the spec)::

    python -m lerobot_vla_tools.speed.worker spec.json result.json
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # short names keep the phases' signatures readable
    import torch
    from lerobot.configs.policies import PreTrainedConfig as Config
    from lerobot.configs.types import PolicyFeature
    from lerobot.policies.pretrained import PreTrainedPolicy as Policy
    from lerobot.processor import PolicyProcessorPipeline as Pipeline

    from lerobot_vla_tools.export import OnnxChunkRunner

# shared with lerobot-vla-export, which checks parity on the same inputs
from lerobot_vla_tools.batches import BENCH_PROMPT, observation_batch  # noqa: F401

# ---------------------------------------------------------------------------------------------- memory


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int:
    """Current resident set size of this process."""
    kib = _proc_status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # best effort off Linux


class PeakRSS:
    """Peak RSS of this process inside a ``with`` block.

    Uses the kernel's high-water mark (``VmHWM``), reset on entry through ``/proc/self/clear_refs``; where that
    is not available it samples ``VmRSS`` from a thread every 2 ms (which can miss very short spikes).
    """

    def __init__(self):
        self.peak = 0
        self._thread = None
        self._stop = threading.Event()

    def __enter__(self):
        self._hwm = False
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._hwm = _proc_status_kib("VmHWM") is not None
        except OSError:
            self._hwm = False
        if not self._hwm:
            self.peak = rss_bytes()

            def sample():
                while not self._stop.wait(0.002):
                    self.peak = max(self.peak, rss_bytes())

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._hwm:
            self.peak = _proc_status_kib("VmHWM") * 1024
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, rss_bytes())
        return False


# ---------------------------------------------------------------------------------------------- inputs


def case_features(features: str) -> tuple[dict[str, PolicyFeature], dict[str, PolicyFeature]]:
    """(input_features, output_features) of a case: ``"metaworld"`` or a LeRobot dataset root."""
    from lerobot_vla_plugins.features import dataset_features, metaworld_policy_features

    return metaworld_policy_features() if features == "metaworld" else dataset_features(features)


def synthetic_stats(input_features: dict, output_features: dict) -> dict:
    """Normalisation statistics for every feature: unit range / unit variance, every statistic LeRobot reads.

    Shapes follow LeRobot's dataset stats: ``(C, 1, 1)`` for images, ``(D,)`` for vectors.
    """
    import torch
    from lerobot.configs.types import FeatureType

    stats = {}
    for key, feat in {**input_features, **output_features}.items():
        shape = (feat.shape[0], 1, 1) if feat.type is FeatureType.VISUAL else tuple(feat.shape)
        one = torch.ones(shape)
        if feat.type is FeatureType.VISUAL:
            lo, hi, mean, std = 0 * one, one, 0.5 * one, 0.25 * one
        else:
            lo, hi, mean, std = -one, one, 0 * one, one
        stats[key] = {
            "min": lo,
            "max": hi,
            "mean": mean,
            "std": std,
            "q01": lo,
            "q99": hi,
            "q10": lo,
            "q90": hi,
            "count": torch.tensor([1000]),
        }
    return stats


def training_batch(
    config: Config,
    input_features: dict[str, PolicyFeature],
    output_features: dict[str, PolicyFeature],
    batch_size: int,
    generator: torch.Generator | None,
) -> dict[str, Any]:
    """A batch as a LeRobot dataset with the policy's delta indices yields it (before the preprocessor).

    Observations get a time axis of ``len(observation_delta_indices)`` when the policy asks for one; actions
    are ``(B, T, A)`` with ``T = len(action_delta_indices)`` and ``action_is_pad`` all False.
    """
    import torch
    from lerobot.configs.types import FeatureType

    obs_t = config.observation_delta_indices
    act_t = config.action_delta_indices
    batch: dict[str, Any] = {}
    for key, feat in input_features.items():
        shape = (batch_size, len(obs_t), *feat.shape) if obs_t is not None else (batch_size, *feat.shape)
        batch[key] = (
            torch.rand(shape, generator=generator)
            if feat.type is FeatureType.VISUAL
            else torch.randn(shape, generator=generator)
        )
        if obs_t is not None:
            batch[f"{key}_is_pad"] = torch.zeros((batch_size, len(obs_t)), dtype=torch.bool)
    for key, feat in output_features.items():
        shape = (batch_size, len(act_t), *feat.shape) if act_t is not None else (batch_size, *feat.shape)
        batch[key] = torch.randn(shape, generator=generator).clamp(-1, 1)
        if act_t is not None:
            batch[f"{key}_is_pad"] = torch.zeros((batch_size, len(act_t)), dtype=torch.bool)
    batch["task"] = [BENCH_PROMPT] * batch_size
    return batch


# ---------------------------------------------------------------------------------------------- build


def build_policy(
    spec: dict,
) -> tuple[Policy, Pipeline, Pipeline, Config]:
    """The policy of ``spec`` with random weights, its pre/post processors, and its features.

    Paper-size cases are built inside ``weightless_pretrained(device)``: full-size backbones from the
    config-only presets (or a local ``config.json``), random initialisation on the target device, no weight file.
    """
    import lerobot.policies  # noqa: F401  (registers the built-in policy types)
    import torch
    from lerobot.policies.factory import get_policy_class, make_policy_config, make_pre_post_processors
    from lerobot.utils.import_utils import register_third_party_plugins

    from lerobot_vla_tools.testing.weightless import weightless_kwargs, weightless_pretrained

    register_third_party_plugins()
    inputs, outputs = case_features(spec["features"])
    cfg = make_policy_config(spec["policy_type"], **spec["overrides"])
    cfg.device = spec["device"]
    cfg.input_features, cfg.output_features = inputs, outputs
    if hasattr(cfg, "push_to_hub"):
        cfg.push_to_hub = False
    torch.manual_seed(0)
    policy_cls = get_policy_class(spec["policy_type"])
    if spec["size"] == "paper":
        with weightless_pretrained(device=spec["device"]):
            policy = policy_cls(cfg, **weightless_kwargs(policy_cls))
    else:
        policy = policy_cls(cfg)
    policy.to(spec["device"])
    if spec.get("cast_dtype"):
        policy.to(getattr(torch, spec["cast_dtype"]))
    if spec.get("setup"):
        from lerobot_vla_tools.speed import iter_cases

        (case,) = [c for c in iter_cases() if c.key == spec["case"]]
        case.setup(policy)
    stats = synthetic_stats(cfg.input_features, cfg.output_features)
    preprocessor, postprocessor = make_pre_post_processors(cfg, dataset_stats=stats)
    return policy, preprocessor, postprocessor, cfg


def _sync(device: str):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _param_summary(policy) -> dict:
    total = trainable = weight_bytes = 0
    dtypes: dict[str, int] = {}
    for p in policy.parameters():
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
        weight_bytes += p.numel() * p.element_size()
        dtypes[str(p.dtype).removeprefix("torch.")] = (
            dtypes.get(str(p.dtype).removeprefix("torch."), 0) + p.numel()
        )
    for b in policy.buffers():
        weight_bytes += b.numel() * b.element_size()
    return {
        "params_total": total,
        "params_trainable": trainable,
        "weights_bytes": weight_bytes,
        "param_dtypes": dtypes,
    }


# ---------------------------------------------------------------------------------------------- phases


def measure_inference(
    spec: dict,
    policy: Policy,
    preprocessor: Pipeline,
    postprocessor: Pipeline,
    cfg: Config,
    memory: Memory,
    runner: OnnxChunkRunner | None = None,
) -> dict:
    """Inference samples; with ``runner`` (an ONNX chunk graph) the refresh is ``runner(batch)`` and the chunk
    time is the refresh (no queue to pop)."""
    import torch

    device, bsz = spec["device"], spec["batch_size"]
    gen = torch.Generator().manual_seed(1)
    observation = observation_batch(cfg.input_features, bsz, gen)
    n_steps = int(getattr(cfg, "n_action_steps", 1) or 1)
    policy.eval()

    def one_chunk() -> tuple[float, float, float]:
        """(refresh latency, whole-chunk time, processors time) of one query and its queued actions."""
        policy.reset()
        t0 = time.perf_counter()
        batch = preprocessor(dict(observation))
        _sync(device)
        t1 = time.perf_counter()
        action = policy.select_action(batch) if runner is None else runner(batch)[:, 0]
        _sync(device)
        t2 = time.perf_counter()
        postprocessor(action)
        t3 = time.perf_counter()
        for _ in range(n_steps - 1 if runner is None else 0):
            policy.select_action(batch)
        _sync(device)
        t4 = time.perf_counter()
        return t2 - t1, (t2 - t1) + (t4 - t3), (t1 - t0) + (t3 - t2)

    samples = {"refresh_s": [], "chunk_s": [], "processors_s": [], "warmup_refresh_s": []}
    with torch.inference_mode(), memory as mem:
        for _ in range(spec["warmup"]):  # includes torch.compile's compilation for compiled policies
            samples["warmup_refresh_s"].append(one_chunk()[0])
        for _ in range(spec["repeats"]):
            refresh, chunk, procs = one_chunk()
            samples["refresh_s"].append(refresh)
            samples["chunk_s"].append(chunk)
            samples["processors_s"].append(procs)
    return {
        "n_action_steps": n_steps,
        "samples": samples,
        "per_action_s": [c / n_steps for c in samples["chunk_s"]],
        "actions_per_s": [bsz * n_steps / c for c in samples["chunk_s"]],
        "queries_per_s": [1.0 / r for r in samples["refresh_s"]],
        "peak_bytes": mem.peak_bytes(),
    }


def measure_training(
    spec: dict, policy: Policy, preprocessor: Pipeline, postprocessor: Pipeline, cfg: Config, memory: Memory
) -> dict:
    import torch

    device, bsz = spec["device"], spec["batch_size"]
    gen = torch.Generator().manual_seed(2)
    raw = training_batch(cfg, cfg.input_features, cfg.output_features, bsz, gen)
    policy.train()
    params = [p for p in policy.parameters() if p.requires_grad]
    if not params:
        return {"skipped": "no trainable parameters"}
    optimizer_cfg = cfg.get_optimizer_preset()
    optimizer = optimizer_cfg.build(policy.get_optim_params())
    clip = getattr(optimizer_cfg, "grad_clip_norm", None)

    def step() -> float:
        t0 = time.perf_counter()
        batch = preprocessor(dict(raw))
        loss, _ = policy.forward(batch)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        return time.perf_counter() - t0

    times, warmup_times = [], []
    with memory as mem:
        for _ in range(
            max(spec["warmup"], 1)
        ):  # the first step also allocates the optimizer state (and compiles)
            warmup_times.append(step())
        static = mem.current_bytes()  # weights + optimizer state, between steps
        for _ in range(spec["repeats"]):
            times.append(step())
    return {
        "samples": {"step_s": times, "warmup_step_s": warmup_times},
        "peak_bytes": mem.peak_bytes(),
        "static_bytes": static,
    }


class _CpuMemory:
    """Weights plus the peak RSS growth over the RSS taken when the measured phase starts.

    The policy is already built when the phase starts, so the growth is what the phase allocates (activations,
    gradients, optimizer state) and is not polluted by the modules imported or the transients of building it;
    adding the exact parameter and buffer bytes gives the memory the model needs, as "GPU memory" does on CUDA.
    """

    def __init__(self, weights_bytes: int):
        self.weights_bytes = weights_bytes
        self._peak = PeakRSS()

    def __enter__(self):
        self.baseline = rss_bytes()
        self._peak.__enter__()
        return self

    def __exit__(self, *exc):
        return self._peak.__exit__(*exc)

    def peak_bytes(self) -> int:
        return self.weights_bytes + max(self._peak.peak - self.baseline, 0)

    def current_bytes(self) -> int:
        return self.weights_bytes + max(rss_bytes() - self.baseline, 0)


class _CudaMemory:
    """``torch.cuda.max_memory_allocated`` since entry (the weights are already allocated, so included)."""

    def __enter__(self):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc):
        return False

    def peak_bytes(self) -> int:
        import torch

        return int(torch.cuda.max_memory_allocated())

    def current_bytes(self) -> int:
        import torch

        return int(torch.cuda.memory_allocated())


#: What a phase measures its memory with (``with memory as mem: ... mem.peak_bytes()``).
Memory = _CpuMemory | _CudaMemory


def run(spec: dict) -> dict:
    """Build the case's policy and measure ``spec["phase"]``; returns a JSON-serialisable dict."""
    import torch

    torch.set_num_threads(spec.get("num_threads") or torch.get_num_threads())
    t0 = time.perf_counter()
    policy, preprocessor, postprocessor, cfg = build_policy(spec)
    build_s = time.perf_counter() - t0
    out = {"build_s": build_s, **_param_summary(policy)}
    memory = _CudaMemory() if spec["device"].startswith("cuda") else _CpuMemory(out["weights_bytes"])
    if spec["device"].startswith("cuda"):
        out["gpu_name"] = torch.cuda.get_device_name()
    if spec.get("backend", "eager") == "onnx":
        from lerobot_vla_tools.export import export_refusal

        why = export_refusal(cfg.type)
        if why is not None or spec["phase"] != "infer":
            return {**out, "skipped": why or "ONNX rows are inference only"}
        runner, out["export_s"] = onnx_runner(spec, policy, preprocessor, cfg)
        out.update(measure_inference(spec, policy, preprocessor, postprocessor, cfg, memory, runner))
        return out
    measure = measure_inference if spec["phase"] == "infer" else measure_training
    out.update(measure(spec, policy, preprocessor, postprocessor, cfg, memory))
    return out


def onnx_runner(
    spec: dict, policy: Policy, preprocessor: Pipeline, cfg: Config
) -> tuple[OnnxChunkRunner, float]:
    """(onnxruntime runner of the policy's chunk graph for the bench observation, export seconds)."""
    import tempfile

    import torch

    from lerobot_vla_tools.export import OnnxChunkRunner, export_chunk_graph

    batch = preprocessor(
        observation_batch(cfg.input_features, spec["batch_size"], torch.Generator().manual_seed(1))
    )
    path = Path(tempfile.mkdtemp(prefix="lerobot-vla-speed-onnx-")) / "chunk.onnx"
    t0 = time.perf_counter()
    export_chunk_graph(policy.eval(), batch, path)
    return OnnxChunkRunner(path, num_threads=spec.get("num_threads")), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m lerobot_vla_tools.speed.worker SPEC.json RESULT.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    logging.basicConfig(level=logging.WARNING)
    result = run(spec)
    tmp = Path(argv[1]).with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
