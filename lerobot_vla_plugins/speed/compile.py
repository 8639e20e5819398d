"""``torch.compile`` for the policies of this package: regional compilation of their repeated blocks.

``--policy.compile_model=true`` (LeRobot's field name, as in ``smolvla``/``pi0``) compiles every *repeated
block* of a policy in place: each element of an ``nn.ModuleList`` that has sub-modules (the vision towers'
encoder layers, the language model's decoder layers, the action heads' transformer or ResNet blocks), outermost
only. This is PyTorch's "regional compilation": the layers of one stack share their code, so one graph serves
the whole stack, which keeps the cold start to seconds where compiling a whole 0.5-7B policy takes minutes and
breaks on its Python control flow (prompt building, early exit, the action queue). The glue between the blocks
stays eager. ``nn.Module.compile`` keeps the parameters and their names, so checkpoints load and save as usual.

``--policy.compile_mode`` is passed to ``torch.compile``: ``"default"``; ``"reduce-overhead"`` adds CUDA graphs
on a GPU (on CPU it is ``"default"``); ``"max-autotune"`` also tunes the matmul kernels (and uses CUDA graphs),
``"max-autotune-no-cudagraphs"`` without them. The first call of every new input shape compiles (seconds on a
GPU, tens of seconds on a small CPU); then the outputs equal the eager policy's up to float tolerance
(``tests/test_compile.py``).
"""

from __future__ import annotations

from torch import nn

from lerobot_vla_plugins.errors import ConfigError

#: ``torch.compile`` modes (``torch._inductor.list_mode_options``).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def check_compile_mode(policy: str, mode: str) -> None:
    """Raise a :class:`ConfigError` naming ``compile_mode`` when ``mode`` is not a ``torch.compile`` mode."""
    if mode not in COMPILE_MODES:
        raise ConfigError(
            f"{policy}: compile_mode={mode!r} is not one of {list(COMPILE_MODES)} (torch.compile's modes); "
            f"pass --policy.compile_mode=default"
        )


def repeated_blocks(root: nn.Module) -> list[nn.Module]:
    """The outermost elements of every ``nn.ModuleList`` under ``root`` that have sub-modules, in module order.

    A leaf element (a bare ``nn.Linear`` in a list of per-layer projections) is not a block; blocks nested in a
    block (a ``ModuleList`` inside a decoder layer) are compiled as part of it.
    """
    blocks: list[nn.Module] = []

    def walk(module: nn.Module) -> None:
        for child in module.children():
            if isinstance(child, nn.ModuleList):
                for element in child:
                    if next(element.children(), None) is not None:
                        blocks.append(element)
                    else:
                        walk(element)
            else:
                walk(child)

    walk(root)
    return blocks


def compile_repeated_blocks(root: nn.Module, mode: str = "default") -> list[nn.Module]:
    """Compile every repeated block of ``root`` in place (``nn.Module.compile``) and return them.

    Idempotent: a block already compiled is left as it is.
    """
    blocks = repeated_blocks(root)
    for block in blocks:
        if getattr(block, "_compiled_call_impl", None) is None:
            block.compile(mode=mode)
    return blocks
