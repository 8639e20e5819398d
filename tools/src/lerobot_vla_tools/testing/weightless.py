"""Build transformers models from configs, reading no weights: ``weightless_pretrained``.

Each policy keeps its normal ``from_pretrained(<hub id>)`` code. Inside ``weightless_pretrained()``:

* ``AutoConfig`` / ``PretrainedConfig.from_pretrained(<hub id>)`` return the preset's config
  (``lerobot_vla_plugins.presets``);
* ``AutoModel*.from_pretrained`` / ``PreTrainedModel.from_pretrained`` build the model from its config
  (a local checkpoint's ``config.json`` or a preset) on ``device`` with random initialisation, reading no
  weight file (``device="meta"`` allocates nothing at all);
* ``AutoTokenizer.from_pretrained(<hub id>)`` returns a small byte-level BPE tokenizer whose special tokens
  have the preset's ids (parameter counts do not depend on the tokenizer).

Weights a policy reads outside transformers (a connector or projector file, a released checkpoint, a teacher)
are not patched: the caller builds such policies with ``weightless=True`` (``weightless_kwargs``), an explicit
constructor argument, so nothing inside the light library depends on whether this context is active.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from lerobot_vla_plugins.presets import PRESET_DIR, available_presets, has_preset, load_preset, preset_config

if TYPE_CHECKING:
    import torch

# Guards against nesting (the patches below are process-wide); never read by model code.
_ACTIVE: list[str] = []


def weightless_kwargs(policy_cls: type) -> dict:
    """``{"weightless": True}`` for a policy class whose constructor takes ``weightless`` (ours: it then skips the
    weight files and trained inputs it reads outside transformers), else ``{}`` (e.g. LeRobot's own policies)."""
    params = inspect.signature(policy_cls.__init__).parameters
    return {"weightless": True} if "weightless" in params else {}


class _PresetTokenizer:
    """A tiny byte-level BPE tokenizer that uses a preset's ids for its special tokens.

    Special tokens get the preset's ids everywhere: ``convert_tokens_to_ids``, the ``*_token_id``
    attributes and the ``input_ids`` it returns, so a randomly initialised full-size model (built on a
    real device for benchmarks) finds its image placeholders where the real tokenizer would put them.
    Ordinary text maps to small ids, valid in any real vocabulary.
    """

    def __init__(self, hub_id: str):
        from lerobot_vla_tools.testing.tokenizers import DEFAULT_SPECIAL_TOKENS, train_byte_level_bpe

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
    from transformers import PretrainedConfig

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

    if _ACTIVE:
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

    _ACTIVE.append(device)
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
        _ACTIVE.clear()
        _ORIGINALS.clear()
