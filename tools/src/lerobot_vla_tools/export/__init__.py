"""CPU export: each policy's per-chunk inference as one ONNX graph, run with onnxruntime (``lerobot-vla-export``).

:mod:`.onnx` holds the chunk graph, the export and the runner; :mod:`.cli` the command.
"""

from .onnx import (
    EXPORTED,
    NOT_EXPORTED,
    ExportInfo,
    OnnxChunkRunner,
    check_exportable,
    eager_chunk,
    export_chunk_graph,
    export_refusal,
    make_noise,
    parity,
)

__all__ = [
    "EXPORTED",
    "NOT_EXPORTED",
    "ExportInfo",
    "OnnxChunkRunner",
    "check_exportable",
    "export_refusal",
    "eager_chunk",
    "export_chunk_graph",
    "make_noise",
    "parity",
]
