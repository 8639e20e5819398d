"""Speed and memory benchmarks (``lerobot-vla-speed``), side by side with upstream policies.

A *bench case* names a policy type at one size. Cases live one module per policy in
``tools/src/lerobot_vla_tools/speed/cases/<policy>.py``, each defining ``cases() -> list[BenchCase]``; the harness
discovers them, builds every case's policy with random weights (``weightless_pretrained`` for paper-size
backbones, the testing kit for tiny ones) and times them all in one run, so ratios are meaningful.

The harness itself lives in ``harness.py`` (orchestration, tables), ``worker.py`` (one measurement in a fresh
process) and ``cli.py`` (the ``lerobot-vla-speed`` command).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BenchCase:
    """One row of the benchmark tables.

    Attributes:
        name: row label, e.g. ``"vla_adapter (pro)"``.
        policy_type: the registered LeRobot policy type.
        size: ``"tiny"`` (testing-kit backbone) or ``"paper"`` (the paper's sizes, random weights).
        overrides: config field values for this case (e.g. ``{"variant": "pro"}``).
        prepare: for tiny cases, called with a scratch directory; builds the local tiny backbone(s) and returns
            more overrides (typically the backbone path). None when nothing must be built.
        features: policy features, ``"metaworld"`` or a LeRobot dataset root (as ``lerobot-vla-info``).
        paper_figure: the figure the paper reports for this model, quoted in the tables (e.g. "0.036 s / chunk, H100").
        dtype_overrides: optional config overrides per harness ``--dtype`` (e.g. ``{"float32": {"vlm_dtype":
            "float32"}}``) for policies that manage their own precision; without an entry for the requested dtype
            the harness casts the whole policy with ``policy.to(dtype)``.
        notes: optional one-line remark printed under the tables (e.g. what differs from the paper's setting).
        setup: optional function called with the built policy before it is measured (e.g. to switch on an
            inference optimisation such as ``lerobot_vla_plugins.speed.evo1.accelerate_evo1``).
        backend: ``"eager"`` (the policy) or ``"onnx"`` (its chunk graph on onnxruntime's CPU provider,
            ``lerobot_vla_tools.export``; inference rows only).
    """

    name: str
    policy_type: str
    size: str
    overrides: dict = field(default_factory=dict)
    prepare: Callable[[Path], dict] | None = None
    features: str = "metaworld"
    paper_figure: str = ""
    dtype_overrides: dict = field(default_factory=dict)
    notes: str = ""
    setup: Callable[[Any], Any] | None = None
    backend: str = "eager"

    def resolve_overrides(self, scratch: Path) -> dict:
        """The config overrides of this case with its local backbones built under ``scratch`` (``prepare``)."""
        return {**self.overrides, **(self.prepare(scratch) if self.prepare is not None else {})}

    @property
    def key(self) -> str:
        """Unique id of the case in a run: ``<name>@<size>``."""
        return f"{self.name}@{self.size}"


def iter_cases() -> list[BenchCase]:
    """All cases of every module in ``bench/cases``, in module-name order."""
    from . import cases as cases_pkg

    out: list[BenchCase] = []
    for info in sorted(pkgutil.iter_modules(cases_pkg.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{cases_pkg.__name__}.{info.name}")
        out.extend(module.cases())
    return out


def print_rows(table: str, header: str, rows: list[dict], json_path: str | None = None) -> None:
    """Print a benchmark's ``table`` and, when ``json_path`` is given, write ``{"header", "rows"}`` there."""
    import json

    print(table)
    if json_path:
        Path(json_path).write_text(json.dumps({"header": header, "rows": rows}, indent=2))
