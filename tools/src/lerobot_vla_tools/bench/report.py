"""Write a :class:`ResultTable` as the paper's table (markdown, CSV) and a bar chart (PNG), each atomically."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import uuid
from pathlib import Path

from .base import ResultTable


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, path)


def to_markdown(table: ResultTable) -> str:
    labels = [label for _, label in table.columns]
    lines = [
        f"### {table.title}",
        "",
        "| Model | " + " | ".join(labels) + " | Source |",
        "|" + "---|" * (len(labels) + 2),
    ]
    ours = [table.fmt(k, table.ours.get(k), table.ours_std.get(k)) for k, _ in table.columns]
    lines.append(
        f"| **{table.ours_label}** | " + " | ".join(ours) + f" | this run ({table.episodes} episodes) |"
    )
    for row in table.paper_rows:
        cells = [table.fmt(k, row.values.get(k)) for k, _ in table.columns]
        lines.append(f"| {row.model} | " + " | ".join(cells) + f" | {row.source} |")
    notes = list(table.notes)
    if any(v > 0 for v in table.ours_std.values()):
        notes.insert(0, "± is the standard deviation over the runs (seeds).")
    if notes:
        lines.append("")
        lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines) + "\n"


def to_csv(table: ResultTable) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["model", "source", *[label for _, label in table.columns], "episodes"])

    def num(v):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"

    writer.writerow(
        [table.ours_label, "this run", *[num(table.ours.get(k)) for k, _ in table.columns], table.episodes]
    )
    for row in table.paper_rows:
        writer.writerow([row.model, row.source, *[num(row.values.get(k)) for k, _ in table.columns], ""])
    return buf.getvalue()


def to_png(table: ResultTable) -> bytes:
    """Grouped bars over the table's percentage columns: this run and the papers' chart rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k, _ in table.columns if k in table.percent_columns]
    labels = [label for k, label in table.columns if k in table.percent_columns]
    extra = {k: label for k, label in table.columns if k not in table.percent_columns}

    def legend(name, values):
        more = ", ".join(
            f"{label} {values[k]:.2f}" for k, label in extra.items() if values.get(k) is not None
        )
        return f"{name} ({more})" if more else name

    series = [(legend(f"{table.ours_label} (this run)", table.ours), table.ours, table.ours_std)]
    series += [
        (legend(f"{r.model} [{r.source}]", r.values), r.values, {}) for r in table.paper_rows if r.chart
    ]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * len(keys) * len(series) + 3), 4.5))
    for i, (name, values, spread) in enumerate(series):
        xs, ys, errs = [], [], []
        for j, k in enumerate(keys):
            v = values.get(k)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(v)
            errs.append(spread.get(k, 0.0))
        hatch = None if i else "//"
        ax.bar(
            xs,
            ys,
            width,
            label=name,
            yerr=errs if any(errs) else None,
            hatch=hatch,
            edgecolor="black",
            linewidth=0.4,
        )
    ax.set_xticks(
        range(len(keys)),
        labels,
        rotation=20 if len(keys) > 6 else 0,
        ha="right" if len(keys) > 6 else "center",
    )
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(0, 105)
    subset = next((n for n in table.notes if n.startswith(("Subset", "Incomplete"))), "")
    ax.set_title(table.title + (f"\n{subset}" if subset else ""), fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def write_report(table: ResultTable, out_dir: Path, settings: dict) -> dict[str, Path]:
    """Write ``table.md``, ``table.csv``, ``chart.png`` and ``results.json`` into ``out_dir``.

    Returns:
        ``{"markdown": path, "csv": path, "chart": path, "json": path}``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out_dir / "table.md",
        "csv": out_dir / "table.csv",
        "chart": out_dir / "chart.png",
        "json": out_dir / "results.json",
    }
    write_atomic(paths["markdown"], to_markdown(table).encode())
    write_atomic(paths["csv"], to_csv(table).encode())
    write_atomic(paths["chart"], to_png(table))
    payload = {
        "title": table.title,
        "columns": [{"key": k, "label": label} for k, label in table.columns],
        "ours": {
            "label": table.ours_label,
            "values": table.ours,
            "std": table.ours_std,
            "episodes": table.episodes,
        },
        "paper_rows": [{"model": r.model, "source": r.source, "values": r.values} for r in table.paper_rows],
        "notes": table.notes,
        "settings": settings,
    }
    write_atomic(paths["json"], json.dumps(payload, indent=2, default=str).encode())
    return paths
