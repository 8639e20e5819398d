"""``lerobot-vla-speed``: latency, throughput and memory of every policy, in one run.

Examples::

    lerobot-vla-speed                                   # every case, tiny and paper size, batch 1 and 8, CPU
    lerobot-vla-speed --policies=evo1 --sizes=tiny --batch_sizes=1 --repeats=3
    lerobot-vla-speed --policies=evo1,vla_adapter --sizes=paper --device=cuda --dtype=bfloat16
    lerobot-vla-speed --sizes=tiny --compile_mode=default   # + a torch.compile row per policy of ours
    lerobot-vla-speed --sizes=tiny --phases=infer --onnx=true  # + an onnxruntime row per exportable policy
    lerobot-vla-speed --list=true                       # the cases that exist
    lerobot-vla-speed --from_json=outputs/speed/speed.json   # the tables of a saved report

Prints a markdown table and writes the full report (every sample, the machine) as JSON to ``--output_json``
(``outputs/speed/speed.json`` by default) and the table to ``--output_md``.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import draccus

from .harness import BenchSettings, format_markdown, run_benchmark, select_cases

DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class SpeedConfig:
    # Policy types or case names, comma-separated (e.g. "evo1,vla_adapter"); empty = every case.
    policies: str = ""
    # "tiny", "paper" or "tiny,paper".
    sizes: str = "tiny,paper"
    # Comma-separated batch sizes.
    batch_sizes: str = "1,8"
    # "infer", "train" or "infer,train".
    phases: str = "infer,train"
    # "cpu", "cuda" or "cuda:N".
    device: str = "cpu"
    # float32, bfloat16 or float16. Policies that manage their own precision (evo1: vlm_dtype) get their field set;
    # others are cast with policy.to(dtype).
    dtype: str = "float32"
    # Timed repetitions per measurement (median and min-max are reported) and untimed warm-up repetitions.
    repeats: int = 5
    warmup: int = 1
    # torch threads in the workers (default: torch's default).
    num_threads: int | None = None
    # Per-worker wall-clock limit in seconds (0 = none); a row that exceeds it is reported as failed.
    timeout_s: float = 0
    # Also measure each policy of this package compiled (--policy.compile_model=true) in this torch.compile mode
    # ("default", "reduce-overhead" = CUDA graphs on a GPU, ...), as a "+ compile" row next to its eager row.
    compile_mode: str | None = None
    # Also measure each exportable policy's ONNX chunk graph on onnxruntime's CPU provider (lerobot-vla-export), as
    # a "+ onnx" row (inference only) next to its eager row.
    onnx: bool = False
    # Where tiny backbones are built (default: a temporary directory).
    scratch_dir: str | None = None
    output_json: str = "outputs/speed/speed.json"
    output_md: str = "outputs/speed/speed.md"
    # Only list the available cases.
    list: bool = False
    # Re-render the tables of a saved JSON report (no measurement).
    from_json: str | None = None


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def settings_from(cfg: SpeedConfig) -> BenchSettings:
    """Validated harness settings; raises ValueError naming the bad option."""
    try:
        batch_sizes = [int(b) for b in _split(cfg.batch_sizes)]
    except ValueError:
        raise ValueError(
            f"--batch_sizes={cfg.batch_sizes!r}: expected comma-separated integers, e.g. 1,8"
        ) from None
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise ValueError(f"--batch_sizes={cfg.batch_sizes!r}: expected positive integers, e.g. 1,8")
    phases = _split(cfg.phases)
    if not phases or any(p not in ("infer", "train") for p in phases):
        raise ValueError(f"--phases={cfg.phases!r}: expected infer, train or infer,train")
    if cfg.dtype not in DTYPES:
        raise ValueError(f"--dtype={cfg.dtype!r}: expected one of {', '.join(DTYPES)}")
    if not (cfg.device == "cpu" or cfg.device.startswith("cuda")):
        raise ValueError(f"--device={cfg.device!r}: expected cpu or cuda[:N]")
    if cfg.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(
                f"--device={cfg.device}: CUDA is not available on this machine; use --device=cpu"
            )
    if cfg.compile_mode is not None:
        from lerobot_vla_plugins.speed.compile import COMPILE_MODES

        if cfg.compile_mode not in COMPILE_MODES:
            raise ValueError(
                f"--compile_mode={cfg.compile_mode!r}: expected one of {', '.join(COMPILE_MODES)}"
            )
    if cfg.repeats < 1 or cfg.warmup < 0:
        raise ValueError(f"--repeats must be >= 1 and --warmup >= 0 (got {cfg.repeats}, {cfg.warmup})")
    return BenchSettings(
        policies=_split(cfg.policies),
        sizes=_split(cfg.sizes),
        batch_sizes=batch_sizes,
        phases=phases,
        device=cfg.device,
        dtype=cfg.dtype,
        repeats=cfg.repeats,
        warmup=cfg.warmup,
        num_threads=cfg.num_threads,
        timeout_s=cfg.timeout_s or None,
        scratch_dir=cfg.scratch_dir,
        compile_mode=cfg.compile_mode,
        onnx=cfg.onnx,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    cfg = draccus.parse(SpeedConfig, args=sys.argv[1:] if argv is None else argv)
    if cfg.from_json:
        print(format_markdown(json.loads(Path(cfg.from_json).read_text())))
        return 0
    try:
        settings = settings_from(cfg)
        cases = select_cases(settings)
    except ValueError as err:
        print(f"lerobot-vla-speed: error: {err}", file=sys.stderr)
        return 2
    if cfg.list:
        for c in cases:
            print(f"{c.key:40s} {c.policy_type:14s} {c.paper_figure}")
        return 0
    if not cases:
        print("lerobot-vla-speed: error: no case matches the filters", file=sys.stderr)
        return 2

    def log(msg: str):
        print(msg, file=sys.stderr, flush=True)

    report = run_benchmark(settings, cases, log=log)
    table = format_markdown(report)
    for path, text in ((cfg.output_json, json.dumps(report, indent=1)), (cfg.output_md, table + "\n")):
        if path:
            out = Path(path)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".tmp")
            tmp.write_text(text)
            tmp.replace(out)
    print(table)
    failed = any("error" in r for e in report["cases"] for r in e.get("runs", [])) or any(
        "error" in e for e in report["cases"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
