"""The benchmark harness behind ``lerobot-vla-speed``: select cases, measure each in a fresh worker, tabulate.

Every selected case is measured in the same invocation, one after the other (never concurrently), so that the
ratios between rows are meaningful on a noisy machine. Each (case, phase, batch size) runs in its own worker
process (``bench/worker.py``) so that the CPU peak memory of one row is not inflated by another row's
allocations; the parent only prepares the tiny backbones and collects the JSON each worker writes.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from . import BenchCase, iter_cases

GIB = 1024**3
#: GPUs a user is likely to have, by memory (GiB) -> examples; used for the "smallest GPU" estimate.
GPU_TIERS = (
    (8, "8 GB (RTX 4060 / 3070)"),
    (12, "12 GB (RTX 3060 / 4070)"),
    (16, "16 GB (RTX 4060 Ti 16G / T4)"),
    (24, "24 GB (RTX 4090 / 3090 / A10)"),
    (40, "40 GB (A100 40GB)"),
    (48, "48 GB (L40S / RTX 6000 Ada)"),
    (80, "80 GB (A100 / H100 80GB)"),
    (141, "141 GB (H200)"),
)
#: Memory the CUDA context and the caching allocator take on top of the tensors (a rough, typical figure).
CUDA_OVERHEAD_BYTES = int(0.75 * GIB)
#: Fraction of a GPU's memory a run can use in practice (fragmentation, display, other processes).
USABLE_FRACTION = 0.9


@dataclass
class BenchSettings:
    """What to run. Empty filters select everything."""

    policies: list[str] = field(default_factory=list)
    sizes: list[str] = field(default_factory=lambda: ["tiny", "paper"])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8])
    phases: list[str] = field(default_factory=lambda: ["infer", "train"])
    device: str = "cpu"
    dtype: str = "float32"
    repeats: int = 5
    warmup: int = 1
    num_threads: int | None = None
    #: wall-clock limit per worker (seconds); a row that exceeds it is reported as failed, the run goes on
    timeout_s: float | None = None
    #: where tiny backbones are built; a temporary directory when None
    scratch_dir: str | None = None
    #: also measure every policy of this package with ``compile_model=True`` in this ``torch.compile`` mode
    #: (a "+ compile" row after its eager row); None: eager only
    compile_mode: str | None = None
    #: also measure every exportable policy's ONNX chunk graph on onnxruntime (a "+ onnx" row after its eager row)
    onnx: bool = False


def select_cases(settings: BenchSettings, cases: list[BenchCase] | None = None) -> list[BenchCase]:
    """The cases matching ``settings.policies`` and ``settings.sizes``, in discovery order.

    A filter entry that is a case name selects the cases of that name (``evo1`` is upstream evo1, not
    ``evo1 (accelerated)``); otherwise it selects every case of that policy type (``vla_adapter``).

    Raises:
        ValueError: a filter names a policy or size no case has (the message lists what exists).
    """
    cases = iter_cases() if cases is None else cases
    names = {c.name for c in cases}
    types = {c.policy_type for c in cases}
    unknown = [p for p in settings.policies if p not in names | types]
    if unknown:
        raise ValueError(
            f"--policies: no bench case for {unknown}; available: {', '.join(sorted(names | types))}"
        )
    bad_sizes = [s for s in settings.sizes if s not in {"tiny", "paper"}]
    if bad_sizes:
        raise ValueError(f"--sizes: {bad_sizes} is not a size; use tiny and/or paper")

    def wanted(case: BenchCase) -> bool:
        if not settings.policies:
            return True
        return any(case.name == p if p in names else case.policy_type == p for p in settings.policies)

    selected = [c for c in cases if wanted(c) and c.size in settings.sizes]
    if settings.compile_mode:
        selected = [
            v for c in selected for v in (c, compiled_variant(c, settings.compile_mode)) if v is not None
        ]
    if settings.onnx:
        selected = [v for c in selected for v in (c, onnx_variant(c)) if v is not None]
    return selected


@functools.cache
def supports_compile(policy_type: str) -> bool:
    """Whether ``policy_type`` is a policy of this package (``compile_model``: ``lerobot_vla_plugins.speed.compile``)."""
    import lerobot.policies  # noqa: F401  (registers the built-in policy types)
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()
    cls = PreTrainedConfig.get_choice_class(policy_type)
    names = {f.name for f in fields(cls)}
    return cls.__module__.startswith("lerobot_policy_") and {"compile_model", "compile_mode"} <= names


def compiled_variant(case: BenchCase, mode: str) -> BenchCase | None:
    """The ``+ compile`` row of ``case`` (same case, ``compile_model=True``), or None for upstream policies (and
    for cases with their own ``setup``, which are accelerations of upstream policies)."""
    if case.setup is not None or not supports_compile(case.policy_type):
        return None
    return replace(
        case,
        name=f"{case.name} + compile",
        overrides={**case.overrides, "compile_model": True, "compile_mode": mode},
        paper_figure="",
        notes=f"torch.compile of the repeated blocks, mode {mode!r}; compilation is in the warm-up",
    )


def onnx_variant(case: BenchCase) -> BenchCase | None:
    """The ``+ onnx`` row of ``case`` (its chunk graph on onnxruntime), or None where the policy type has no chunk
    graph (``lerobot_vla_tools.export.onnx.export_refusal``) or the case is itself a variant."""
    from lerobot_vla_tools.export.onnx import EXPORTED, export_refusal

    if case.setup is not None or case.backend != "eager" or "compile_model" in case.overrides:
        return None
    if export_refusal(case.policy_type) is not None:
        return None
    return replace(
        case,
        name=f"{case.name} + onnx",
        backend="onnx",
        paper_figure="",
        notes=f"ONNX chunk graph ({EXPORTED[case.policy_type]}) on onnxruntime CPU; export in the build",
    )


# ---------------------------------------------------------------------------------------------- running


def machine_info(device: str) -> dict:
    import lerobot
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lerobot": lerobot.__version__,
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["gpu_memory_bytes"] = torch.cuda.get_device_properties(0).total_memory
    return info


def _run_worker(spec: dict, workdir: Path, timeout_s: float | None, log: Callable[[str], object]) -> dict:
    tag = f"{spec['case']}-{spec['phase']}-b{spec['batch_size']}".replace("/", "_").replace("@", "-")
    spec_path, out_path = workdir / f"{tag}.spec.json", workdir / f"{tag}.result.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "lerobot_vla_tools.speed.worker", str(spec_path), str(out_path)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out_path.is_file():
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        log(f"  failed (exit {proc.returncode}):\n{tail}")
        return {"error": f"worker exited {proc.returncode}: {tail.splitlines()[-1] if tail else ''}"}
    result = json.loads(out_path.read_text())
    result["worker_wall_s"] = wall
    return result


def run_benchmark(
    settings: BenchSettings, cases: list[BenchCase] | None = None, log: Callable[[str], object] = print
) -> dict[str, Any]:
    """Measure ``cases`` as given (already selected), or the cases ``settings`` selects when None; returns the
    report (``{"settings", "machine", "cases": [...]}``)."""
    selected = select_cases(settings) if cases is None else cases
    report = {"settings": asdict(settings), "machine": machine_info(settings.device), "cases": []}
    with tempfile.TemporaryDirectory(prefix="lerobot-vla-speed-") as tmp:
        scratch = Path(settings.scratch_dir) if settings.scratch_dir else Path(tmp) / "scratch"
        workdir = Path(tmp) / "work"
        workdir.mkdir(parents=True)
        for case in selected:
            log(f"[{case.key}] {case.policy_type}")
            cast = (
                None
                if settings.dtype in case.dtype_overrides or settings.dtype == "float32"
                else settings.dtype
            )
            entry = {
                "case": case.key,
                "name": case.name,
                "policy_type": case.policy_type,
                "size": case.size,
                "paper_figure": case.paper_figure,
                "notes": case.notes,
                "dtype": settings.dtype,
                "device": settings.device,
                "runs": [],
            }
            try:
                case_dir = scratch / case.key.replace("@", "-")
                case_dir.mkdir(parents=True, exist_ok=True)
                overrides = {
                    **case.resolve_overrides(case_dir),
                    **case.dtype_overrides.get(settings.dtype, {}),
                }
            except Exception as err:  # a broken case must not stop the other rows
                entry["error"] = f"prepare failed: {type(err).__name__}: {err}"
                log(f"  {entry['error']}")
                report["cases"].append(entry)
                continue
            for phase in settings.phases:
                for bsz in settings.batch_sizes:
                    spec = {
                        "case": case.key,
                        "policy_type": case.policy_type,
                        "size": case.size,
                        "overrides": overrides,
                        "features": case.features,
                        "phase": phase,
                        "batch_size": bsz,
                        "device": settings.device,
                        "cast_dtype": cast,
                        "repeats": settings.repeats,
                        "warmup": settings.warmup,
                        "num_threads": settings.num_threads,
                        "setup": case.setup is not None,
                        "backend": case.backend,
                    }
                    log(f"  {phase} batch={bsz} ...")
                    result = _run_worker(spec, workdir, settings.timeout_s, log)
                    entry["runs"].append({"phase": phase, "batch_size": bsz, **result})
            report["cases"].append(entry)
    return report


# ---------------------------------------------------------------------------------------------- summaries


def summarize(samples: list[float]) -> dict:
    """Median and spread of repeated measurements."""
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "n": len(samples),
    }


def smallest_gpu(bytes_needed: float) -> str:
    """The smallest GPU tier whose usable memory holds ``bytes_needed`` plus the CUDA context."""
    need = bytes_needed + CUDA_OVERHEAD_BYTES
    for gib, label in GPU_TIERS:
        if need <= USABLE_FRACTION * gib * GIB:
            return label
    return "> 141 GB (multi-GPU)"


def train_bytes_at(run: dict, batch_size: int) -> float:
    """Training memory at ``batch_size``, extrapolated linearly from a measured run.

    ``static`` (weights, gradients, optimizer state) is kept; the rest of the peak (activations) scales with
    the batch.
    """
    static = run.get("static_bytes", 0)
    act = max(run["peak_bytes"] - static, 0)
    return static + act * batch_size / run["batch_size"]


def case_summary(entry: dict) -> dict:
    """Per-case derived numbers: medians per batch size and the smallest-GPU estimates."""
    out = {"infer": {}, "train": {}, "gpu_estimate": {}}
    for run in entry.get("runs", []):
        if "error" in run or run.get("skipped"):
            continue
        b = run["batch_size"]
        if run["phase"] == "infer":
            out["infer"][b] = {
                "refresh_s": summarize(run["samples"]["refresh_s"]),
                "per_action_s": summarize(run["per_action_s"]),
                "actions_per_s": summarize(run["actions_per_s"]),
                "queries_per_s": summarize(run["queries_per_s"]),
                "processors_s": summarize(run["samples"]["processors_s"]),
                "peak_bytes": run["peak_bytes"],
                "params_total": run["params_total"],
            }
        else:
            out["train"][b] = {
                "step_s": summarize(run["samples"]["step_s"]),
                "peak_bytes": run["peak_bytes"],
                "static_bytes": run.get("static_bytes", 0),
                "params_trainable": run["params_trainable"],
            }
    if out[
        "infer"
    ]:  # from the smallest measured batch (batch 1 unless it was filtered out: then an upper bound)
        out["gpu_estimate"]["inference_b1"] = smallest_gpu(out["infer"][min(out["infer"])]["peak_bytes"])
    train_runs = [
        r
        for r in entry.get("runs", [])
        if r["phase"] == "train" and "error" not in r and not r.get("skipped")
    ]
    if train_runs:
        best = max(train_runs, key=lambda r: r["batch_size"])  # extrapolate from the largest measured batch
        out["gpu_estimate"]["training_b8"] = smallest_gpu(train_bytes_at(best, 8))
        out["gpu_estimate"]["training_b8_bytes"] = train_bytes_at(best, 8)
    return out


def _ms(stat: dict | None) -> str:
    if not stat:
        return "-"
    med, lo, hi = (stat[k] * 1000 for k in ("median", "min", "max"))
    return f"{med:.1f} ({lo:.1f}-{hi:.1f})" if stat["n"] > 1 else f"{med:.1f}"


def _num(stat: dict | None, fmt: str = "{:.1f}") -> str:
    return fmt.format(stat["median"]) if stat else "-"


def _gib(n: float | None) -> str:
    return "-" if n is None else f"{n / GIB:.2f}"


def _params(n: int | None) -> str:
    if not n:
        return "-"
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def format_markdown(report: dict) -> str:
    """The report as markdown: a machine line, one inference table, one training table, and notes."""
    s, m = report["settings"], report["machine"]
    mem_kind = (
        "CUDA max allocated"
        if s["device"].startswith("cuda")
        else "weights + peak RSS growth during the phase"
    )
    where = m.get("gpu") or f"{m['cpu_cores']}-core CPU ({m['cpu']}), no GPU"
    lines = [
        f"Machine: {where}; torch {m['torch']}, LeRobot {m['lerobot']}; device {s['device']}, dtype {s['dtype']}; "
        f"{s['repeats']} repeats after {s['warmup']} warm-up, median (min-max); memory: {mem_kind}.",
        "",
        "| policy | size | params | batch | select_action refresh ms | x evo1 | per action ms | actions/s "
        "| queries/s (Hz) | peak memory GiB | smallest GPU, inference (estimate) | paper figure |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    infer_ratio = {b: ratios(report, "evo1", "infer", b) for b in s["batch_sizes"]}
    train_ratio = {b: ratios(report, "evo1", "train", b) for b in s["batch_sizes"]}
    fmt_ratio = lambda r: "-" if r is None else f"{r:.2f}"  # noqa: E731
    notes = []
    for entry in report["cases"]:
        summ = case_summary(entry)
        errors = [
            f"{r['phase']} b{r['batch_size']}: {r['error']}" for r in entry.get("runs", []) if "error" in r
        ]
        if entry.get("error"):
            errors.append(entry["error"])
        for err in errors:
            notes.append(f"- {entry['name']} ({entry['size']}): FAILED {err}")
        if entry.get("notes"):
            notes.append(f"- {entry['name']} ({entry['size']}): {entry['notes']}")
        for b, inf in sorted(summ["infer"].items()):
            lines.append(
                f"| {entry['name']} | {entry['size']} | {_params(inf['params_total'])} | {b} | {_ms(inf['refresh_s'])} "
                f"| {fmt_ratio(infer_ratio.get(b, {}).get(entry['case']))} | {_ms(inf['per_action_s'])} | {_num(inf['actions_per_s'])} | {_num(inf['queries_per_s'], '{:.2f}')} "
                f"| {_gib(inf['peak_bytes'])} | {summ['gpu_estimate'].get('inference_b1', '-') if b == min(summ['infer']) else ''} "
                f"| {entry['paper_figure'] if b == min(summ['infer']) else ''} |"
            )
    lines += [
        "",
        "| policy | size | trainable params | batch | train step ms | x evo1 | peak memory GiB "
        "| smallest GPU, training batch 8 (estimate) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in report["cases"]:
        summ = case_summary(entry)
        for b, tr in sorted(summ["train"].items()):
            lines.append(
                f"| {entry['name']} | {entry['size']} | {_params(tr['params_trainable'])} | {b} | {_ms(tr['step_s'])} "
                f"| {fmt_ratio(train_ratio.get(b, {}).get(entry['case']))} | {_gib(tr['peak_bytes'])} | {summ['gpu_estimate'].get('training_b8', '-') if b == max(summ['train']) else ''} |"
            )
    lines += [
        "",
        "select_action refresh: one `select_action` call that runs the model (new chunk); per action: a whole chunk "
        "(refresh + queued pops) divided by `n_action_steps`; actions/s: batch x n_action_steps / chunk time; "
        "queries/s: 1 / refresh; x evo1: median time relative to upstream evo1 at the same size and batch, measured in "
        "this run (> 1 is slower). Pre/post-processor time is excluded (it is in the JSON as processors_s).",
        f"Smallest GPU (estimate, not measured): measured peak + {CUDA_OVERHEAD_BYTES / GIB:.2f} GiB CUDA context, "
        f"within {USABLE_FRACTION:.0%} of the card; training at batch 8 extrapolates activations linearly from the "
        "largest measured batch. Measured in the run's dtype, so a float32 CPU measurement overstates a bf16 GPU run.",
    ]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def ratios(report: dict, reference: str = "evo1", phase: str = "infer", batch_size: int = 1) -> dict:
    """Median refresh latency (or train step) of every case relative to ``reference`` at the same size.

    Returns ``{case key: ratio}``; > 1 means slower than the reference.
    """
    key = "refresh_s" if phase == "infer" else "step_s"
    med = {}
    for entry in report["cases"]:
        summ = case_summary(entry).get(phase, {}).get(batch_size)
        if summ:
            med[(entry["name"], entry["size"])] = (entry["case"], summ[key]["median"])
    out = {}
    for (_name, size), (case_key, value) in med.items():
        ref = med.get((reference, size))
        if ref:
            out[case_key] = value / ref[1]
    return out
