"""Config-only presets of the papers' backbones, and building models from them without any weights.

Model weights cannot be downloaded on the build machines, yet ``lerobot-vla-info`` must report the
paper-size models and the benchmarks must time them. Each policy therefore keeps its normal
``from_pretrained(<hub id>)`` code, and this module ships the published ``config.json`` of every backbone
the papers use (``<org>--<name>.json`` next to this file). Inside ``weightless_pretrained()``:

* ``AutoConfig`` / ``PretrainedConfig.from_pretrained(<hub id>)`` return the preset's config;
* ``AutoModel*.from_pretrained`` / ``PreTrainedModel.from_pretrained`` build the model from its config
  (a local checkpoint's ``config.json`` or a preset) on ``device`` with random initialisation, reading no
  weight file (``device="meta"`` allocates nothing at all);
* ``AutoTokenizer.from_pretrained(<hub id>)`` returns a small byte-level BPE tokenizer whose special tokens
  have the preset's ids (parameter counts do not depend on the tokenizer).

A preset file holds ``{"source": ..., "config": {...}, "tokenizer": {"special_token_ids": {...}}}``.
Policies that load weights outside transformers (e.g. released action-head files) check
``weightless_active()`` and skip the load.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig

PRESET_DIR = Path(__file__).parent
_state = threading.local()


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


def weightless_active() -> bool:
    """True inside ``weightless_pretrained()``: code that loads weights by other means should skip it."""
    return getattr(_state, "device", None) is not None


def weightless_device() -> str | None:
    return getattr(_state, "device", None)


class _PresetTokenizer:
    """A tiny byte-level BPE tokenizer that uses a preset's ids for its special tokens.

    Special tokens get the preset's ids everywhere: ``convert_tokens_to_ids``, the ``*_token_id``
    attributes and the ``input_ids`` it returns, so a randomly initialised full-size model (built on a
    real device for benchmarks) finds its image placeholders where the real tokenizer would put them.
    Ordinary text maps to small ids, valid in any real vocabulary.
    """

    def __init__(self, hub_id: str):
        from lerobot_vla_plugins.testing.tokenizers import DEFAULT_SPECIAL_TOKENS, train_byte_level_bpe

        ids = load_preset(hub_id).get("tokenizer", {}).get("special_token_ids", {})
        specials = list(dict.fromkeys([*DEFAULT_SPECIAL_TOKENS, *ids]))
        self._tok = train_byte_level_bpe(vocab_size=384, special_tokens=specials)
        self._ids = ids
        # tiny id -> preset id, for the special tokens the preset names
        self._remap = {self._tok.convert_tokens_to_ids(t): i for t, i in ids.items()}

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            return self._ids.get(tokens, self._tok.convert_tokens_to_ids(tokens))
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def _map_ids(self, ids):
        import torch

        if isinstance(ids, torch.Tensor):
            out = ids.clone()
            for tiny, real in self._remap.items():
                out[ids == tiny] = real
            return out
        if isinstance(ids, int):
            return self._remap.get(ids, ids)
        if hasattr(ids, "tolist"):  # numpy
            import numpy as np

            return np.vectorize(lambda i: self._remap.get(int(i), int(i)))(ids).astype(ids.dtype)
        return [self._map_ids(i) for i in ids]

    def __getattr__(self, name):
        value = getattr(self._tok, name)
        if name.endswith("_token_id") and isinstance(value, int):
            return self._remap.get(value, value)
        return value

    def __call__(self, *args, **kwargs):
        encoding = self._tok(*args, **kwargs)
        if "input_ids" in encoding:
            encoding["input_ids"] = self._map_ids(encoding["input_ids"])
        return encoding

    def __len__(self) -> int:
        return len(self._tok)


def _config_for(name_or_path, kwargs):
    """The config to build ``name_or_path`` with: a preset, a local checkpoint's config.json, or kwargs['config']."""
    from transformers import AutoConfig, PretrainedConfig

    config = kwargs.get("config")
    if isinstance(config, PretrainedConfig):
        return config
    if has_preset(name_or_path):
        return preset_config(str(name_or_path))
    path = Path(str(name_or_path)).expanduser()
    if (path / "config.json").is_file():
        return _ORIGINALS["AutoConfig"](str(path))
    raise OSError(
        f"weightless_pretrained: cannot build {name_or_path!r} without a download: it is neither a local checkpoint "
        f"nor a shipped preset ({', '.join(available_presets())}). Add a preset JSON to {PRESET_DIR}."
    )


_ORIGINALS: dict = {}


@contextlib.contextmanager
def weightless_pretrained(device: str = "meta", dtype: torch.dtype | None = None) -> Iterator[None]:
    """Make transformers' ``from_pretrained`` build models from configs, reading no weights.

    Args:
        device: where parameters are created: ``"meta"`` (shapes only, for parameter counts) or a real
            device (random weights of the real size, for benchmarks).
        dtype: parameter dtype (defaults to the ``dtype``/``torch_dtype`` passed to ``from_pretrained``).
    """
    import torch
    from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel
    from transformers.models.auto import auto_factory

    if weightless_active():
        raise RuntimeError("weightless_pretrained() is not re-entrant")

    # Each Auto class gets its own copy of from_pretrained (transformers' auto_class_update): patch them all.
    auto_classes = []
    todo = [auto_factory._BaseAutoModelClass]
    while todo:
        c = todo.pop()
        todo.extend(c.__subclasses__())
        if "from_pretrained" in c.__dict__:
            auto_classes.append((c, c.__dict__["from_pretrained"]))
    orig_model = PreTrainedModel.from_pretrained.__func__
    orig_auto_config = AutoConfig.from_pretrained.__func__
    orig_config = PretrainedConfig.from_pretrained.__func__
    orig_tokenizer = AutoTokenizer.from_pretrained.__func__
    _ORIGINALS["AutoConfig"] = lambda p: orig_auto_config(AutoConfig, p)

    def _dtype(kwargs):
        d = dtype or kwargs.get("dtype") or kwargs.get("torch_dtype")
        if isinstance(d, str) and d != "auto":
            d = getattr(torch, d)
        return d if isinstance(d, torch.dtype) else None

    def _build(model_cls, config, kwargs):
        attn = kwargs.get("attn_implementation")
        with torch.device(device):
            extra = {"attn_implementation": attn} if attn else {}
            d = _dtype(kwargs)
            if d is not None:
                extra["dtype"] = d
            return model_cls._from_config(config, **extra)

    def auto_model_from_pretrained(cls, name_or_path, *args, **kwargs):
        config = _config_for(name_or_path, kwargs)
        model_cls = auto_factory._get_model_class(config, cls._model_mapping)
        return _build(model_cls, config, kwargs)

    def model_from_pretrained(cls, name_or_path, *args, **kwargs):
        return _build(cls, _config_for(name_or_path, kwargs), kwargs)

    def auto_config_from_pretrained(cls, name_or_path, **kwargs):
        if has_preset(name_or_path):
            cfg = preset_config(str(name_or_path))
            return (cfg, {}) if kwargs.get("return_unused_kwargs") else cfg
        return orig_auto_config(cls, name_or_path, **kwargs)

    def config_from_pretrained(cls, name_or_path, *args, **kwargs):
        if has_preset(name_or_path):
            cfg = preset_config(str(name_or_path))
            sub = getattr(cls, "base_config_key", "") or ""
            return getattr(cfg, sub) if sub and hasattr(cfg, sub) else cfg
        return orig_config(cls, name_or_path, *args, **kwargs)

    def tokenizer_from_pretrained(cls, name_or_path, *args, **kwargs):
        if has_preset(name_or_path):
            return _PresetTokenizer(str(name_or_path))
        return orig_tokenizer(cls, name_or_path, *args, **kwargs)

    _state.device = device
    for c, _ in auto_classes:
        c.from_pretrained = classmethod(auto_model_from_pretrained)
    PreTrainedModel.from_pretrained = classmethod(model_from_pretrained)
    AutoConfig.from_pretrained = classmethod(auto_config_from_pretrained)
    PretrainedConfig.from_pretrained = classmethod(config_from_pretrained)
    AutoTokenizer.from_pretrained = classmethod(tokenizer_from_pretrained)
    try:
        yield
    finally:
        for c, orig in auto_classes:
            c.from_pretrained = orig
        PreTrainedModel.from_pretrained = classmethod(orig_model)
        AutoConfig.from_pretrained = classmethod(orig_auto_config)
        PretrainedConfig.from_pretrained = classmethod(orig_config)
        AutoTokenizer.from_pretrained = classmethod(orig_tokenizer)
        _state.device = None
        _ORIGINALS.clear()
