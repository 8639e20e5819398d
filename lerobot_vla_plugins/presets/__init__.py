"""Config-only presets of the papers' backbones: the published ``config.json`` of every backbone the papers use.

Model weights cannot be downloaded on the build machines, yet ``lerobot-vla-info`` must report the
paper-size models, the benchmarks must time them and converters need the configs of the released parts. This
module ships those configs (``<org>--<name>.json`` next to this file) and looks them up; it reads no weights and
imports transformers only to build a config object. Building whole models from them without weights is
``lerobot_vla_tools.testing.weightless.weightless_pretrained`` (a tool, not part of the light library).

A preset file holds ``{"source": ..., "config": {...}, "tokenizer": {"special_token_ids": {...}}}``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PretrainedConfig

PRESET_DIR = Path(__file__).parent


def preset_path(hub_id: str) -> Path:
    return PRESET_DIR / f"{hub_id.replace('/', '--')}.json"


def available_presets() -> list[str]:
    """Hub ids with a shipped preset."""
    return sorted(p.stem.replace("--", "/") for p in PRESET_DIR.glob("*.json"))


@cache
def load_preset(hub_id: str) -> dict:
    """The preset of ``hub_id``.

    Raises:
        KeyError: no preset is shipped for ``hub_id`` (the message lists the available ones).
    """
    path = preset_path(str(hub_id))
    if not path.is_file():
        raise KeyError(f"no config preset for {hub_id!r}; presets ship for: {', '.join(available_presets())}")
    return json.loads(path.read_text())


def has_preset(name_or_path: str | Path) -> bool:
    return isinstance(name_or_path, (str, Path)) and preset_path(str(name_or_path)).is_file()


def preset_config(hub_id: str) -> PretrainedConfig:
    """A transformers config object built from the preset of ``hub_id``."""
    from transformers import AutoConfig

    cfg = dict(load_preset(hub_id)["config"])
    return AutoConfig.for_model(cfg.pop("model_type"), **cfg)
