"""The official Evo-1 conventions on LeRobot's own ``evo1`` (which we never re-register): two processor steps that
a converted checkpoint's preprocessor carries (``lerobot-vla-evo1-convert`` writes them).

The official code (MINT-SJTU/Evo-1, branch ``evo1-flash`` @ 1bf31c4) and LeRobot's ``evo1`` differ in two places a
released checkpoint depends on:

* **Context.** The official embedder (``Evo_1/model/internvl3/internvl3_embedder.py``) tokenises every prompt with
  ``padding='max_length', truncation=True, max_length=1024``. The language model gets attention mask 0 on the
  padding and on the image tokens of absent cameras, but the action head (``Evo_1/model/action_head/
  flow_matching.py``, ``BasicTransformerBlock``) cross-attends to all 1024 positions plus the state token with no
  key mask. ``return_cls_only`` returns position 0. LeRobot pads to the longest prompt of the batch and masks the
  padding and the absent cameras out of the head, and its ``return_cls_only`` pools the last valid token.
* **State clamp.** The official server (``Evo_1/scripts/Evo1_server.py``, ``Normalizer.normalize_state``) clamps the
  bounds-normalised state to [-1, 1], and the data loader (``lerobot_dataset_pretrain_mp.py``, ``_normalize_tensor``)
  clamps the state and the actions. LeRobot's ``MIN_MAX`` / ``QUANTILES`` do not clamp.

:class:`Evo1BoundsClampStep` does the clamp in the pipeline. A processor cannot change how the model embeds, so
:class:`Evo1OfficialContextStep` marks each batch with ``{"evo1_context": "official"}``, and building the step
installs a hook (:func:`install_official_context_hook`): ``Evo1Policy.forward`` and ``predict_action_chunk`` run a
marked batch under :func:`official_context`. A batch without the mark takes LeRobot's path unchanged.

Neither step is registered in LeRobot's ``ProcessorStepRegistry``. A registered step is saved by its name and can only
be loaded in a process that has already imported its module, and no LeRobot command imports this package. An
unregistered step is saved by its class path, and LeRobot imports that module itself when it loads the pipeline
(``lerobot-eval``, ``lerobot-train --policy.path``, ``lerobot-rollout``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from lerobot.configs.types import PipelineFeatureType, PolicyFeature
from lerobot.lerobot_types import EnvTransition, TransitionKey
from lerobot.processor import ProcessorStep
from lerobot.utils.constants import OBS_STATE

if TYPE_CHECKING:
    from lerobot.policies.evo1.modeling_evo1 import Evo1Policy

#: Batch key the context step sets, and its one value.
CONTEXT_KEY = "evo1_context"
OFFICIAL = "official"
#: Set on the embedder while the official context is active. Code that skips the vision tower for absent cameras
#: (``speed.evo1``) checks it, because the head attends to those cameras' tokens in this mode.
ATTENDS_ABSENT_VIEWS = "_evo1_head_attends_absent_views"
_HOOKED = "_lerobot_vla_official_context_hook"


class _PadToMaxLength:
    """The embedder's tokenizer, with ``padding="max_length"`` forced on every call (the official embedder's padding).

    LeRobot's embedder calls ``tokenizer(prompts, padding=True, truncation=True, max_length=max_text_length)``; with
    this wrapper every prompt is padded to ``max_text_length`` tokens. Everything else is the tokenizer's own.
    """

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def __call__(self, text, **kwargs):
        kwargs["padding"] = "max_length"
        return self._tokenizer(text, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


@contextmanager
def _instance_attributes(obj, **values) -> Iterator[None]:
    """Set instance attributes of ``obj`` for the duration, then restore exactly what was there before."""
    missing = object()
    before = {name: vars(obj).get(name, missing) for name in values}
    for name, value in values.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is missing:
                delattr(obj, name)
            else:
                setattr(obj, name, value)


def _official_vl_embeddings(embed: Callable, default_cls_only: bool) -> Callable:
    """``Evo1Model.get_vl_embeddings`` returning the official head input: all tokens and no mask.

    Returns ``(tokens, None)``: tokens ``(B, N, D)`` (N = max_text_length, padding included), or position 0 ``(B, D)``
    when ``return_cls_only`` (official: ``fused_hidden[:, 0, :]``; LeRobot: the last valid token).
    """

    def vl_embeddings(images, image_mask, prompt=None, return_cls_only=None):
        cls_only = default_cls_only if return_cls_only is None else return_cls_only
        tokens, _valid = embed(images=images, image_mask=image_mask, prompt=prompt, return_cls_only=False)
        return (tokens[:, 0], None) if cls_only else (tokens, None)

    return vl_embeddings


@contextmanager
def official_context(policy: Evo1Policy) -> Iterator[None]:
    """Run LeRobot's ``Evo1Policy`` with the official Evo-1 context for the duration.

    * Tokens: every prompt is padded to the embedder's ``max_text_length`` (1024 in converted checkpoints, the
      official constant) with the tokenizer's pad token. The language model's attention mask stays 0 on the padding
      and on the image tokens of absent cameras, as in both codes.
    * Head: the fused tokens ``(B, N, D)`` are passed without a mask, so its cross-attention sees N + 1 keys (the
      state token last), padding and absent cameras included.
    * ``return_cls_only``: position 0 of the padded sequence, ``(B, D)``.

    The hidden states at padded positions depend on the attention kernel, in the official code as in LeRobot's:
    FlashAttention-2 (with which the released models were trained) zeroes the attention output of padded queries,
    eager and SDPA attention do not. Both codes pick FlashAttention-2 when it is installed.
    """
    model = policy.model
    embedder = model.embedder
    with (
        _instance_attributes(
            embedder, tokenizer=_PadToMaxLength(embedder.tokenizer), **{ATTENDS_ABSENT_VIEWS: True}
        ),
        _instance_attributes(
            model, get_vl_embeddings=_official_vl_embeddings(model.get_vl_embeddings, model.return_cls_only)
        ),
    ):
        yield


def _honour_context_mark(method: Callable) -> Callable:
    """Wrap ``Evo1Policy.forward`` / ``predict_action_chunk`` (``method(self, batch, ...)``) to run a marked batch
    under :func:`official_context`."""

    @functools.wraps(method)
    def wrapper(self, batch, *args, **kwargs):
        mark = batch.get(CONTEXT_KEY) if isinstance(batch, dict) else None
        if mark is None:
            return method(self, batch, *args, **kwargs)
        if mark != OFFICIAL:
            raise ValueError(f"batch[{CONTEXT_KEY!r}] = {mark!r}: the only context mode is {OFFICIAL!r}")
        with official_context(self):
            return method(self, batch, *args, **kwargs)

    setattr(wrapper, _HOOKED, True)
    return wrapper


def install_official_context_hook() -> None:
    """Make ``Evo1Policy.forward`` and ``predict_action_chunk`` honour ``batch["evo1_context"] == "official"``.

    Idempotent. ``select_action`` goes through ``predict_action_chunk``. Unmarked batches are unaffected.
    """
    from lerobot.policies.evo1.modeling_evo1 import Evo1Policy

    for name in ("forward", "predict_action_chunk"):
        method = getattr(Evo1Policy, name)
        if not getattr(method, _HOOKED, False):
            setattr(Evo1Policy, name, _honour_context_mark(method))


class _ConfiglessStep(ProcessorStep):
    """A step without configuration or state that leaves the feature shapes as they are."""

    def get_config(self) -> dict[str, Any]:
        return {}

    def transform_features(
        self, features: dict[PipelineFeatureType, dict[str, PolicyFeature]]
    ) -> dict[PipelineFeatureType, dict[str, PolicyFeature]]:
        return features


@dataclass
class Evo1OfficialContextStep(_ConfiglessStep):
    """Marks each batch so that LeRobot's ``evo1`` embeds it with the official Evo-1 context (see the module doc).

    Sets ``complementary_data["evo1_context"] = "official"``; LeRobot's batch conversion hands it to the policy as
    ``batch["evo1_context"]``. Building the step (also when a saved pipeline is loaded) installs the policy hook.
    """

    def __post_init__(self) -> None:
        install_official_context_hook()

    def __call__(self, transition: EnvTransition) -> EnvTransition:
        new = transition.copy()
        data = dict(new.get(TransitionKey.COMPLEMENTARY_DATA) or {})
        data[CONTEXT_KEY] = OFFICIAL
        new[TransitionKey.COMPLEMENTARY_DATA] = data
        return new


@dataclass
class Evo1BoundsClampStep(_ConfiglessStep):
    """Clamps the normalised ``observation.state`` (B, S) and, in training batches, ``action`` (B, T, A) to [-1, 1].

    The official server clamps ``2 (x - low) / (high - low + 1e-8) - 1`` of the state to [-1, 1], and the official
    data loader clamps the state and the actions (bounds and bounds_q99 normalisation; not the mean/std one). Runs
    right after LeRobot's normalizer; the zero-padded dimensions stay 0.
    """

    def __call__(self, transition: EnvTransition) -> EnvTransition:
        new = transition.copy()
        observation = new.get(TransitionKey.OBSERVATION)
        if isinstance(observation, dict) and isinstance(observation.get(OBS_STATE), torch.Tensor):
            observation = dict(observation)
            observation[OBS_STATE] = observation[OBS_STATE].clamp(-1.0, 1.0)
            new[TransitionKey.OBSERVATION] = observation
        action = new.get(TransitionKey.ACTION)
        if isinstance(action, torch.Tensor):
            new[TransitionKey.ACTION] = action.clamp(-1.0, 1.0)
        return new
