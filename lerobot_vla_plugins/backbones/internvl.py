"""InternVL family (native transformers ``InternVLModel``): InternViT + pixel-shuffle MLP projector + Qwen2.

Used by VITA-VLA (VITA-1.5 = InternViT-300M + MLP + Qwen2.5-7B, converted to this layout) and selectable
as A1's backbone. Evo-1 uses the same family through LeRobot's own ``evo1`` policy.

Prompts carry one image placeholder per view (``image_placeholder()``: ``<img>`` + ``<IMG_CONTEXT>`` x
N_img + ``</img>``), exactly as InternVL's chat format and Evo-1's prompt place them; the image tokens are
spliced into the ``<IMG_CONTEXT>`` positions. VITA-1.5 splices its image tokens with no ``<img>`` markers
(``image_placeholder(wrap=False)``) and puts other embeddings (state, action queries) at placeholder
tokens inside the prompt (``prepare_inputs(inline=...)``).

Options for checkpoints converted from other InternViT + MLP + LLM models (VITA-1.5):

* ``image_size``: run the vision tower at another square size than its checkpoint's (position embeddings
  are interpolated by transformers); VITA-VLA feeds 200x200 images -> 14x14 patches of 14 px -> 2x2 pixel
  shuffle -> 7x7 = 49 tokens per image;
* a config attribute ``projector_layer_norm: false`` drops the projector's LayerNorm (VITA-1.5's
  ``mlp2x_gelu`` projector is Linear-GELU-Linear, with no norm in front).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from .base import VLMBackbone, VLMInputs, assemble_prefix

if TYPE_CHECKING:
    from transformers import PretrainedConfig

IMG_START_TOKEN = "<img>"
IMG_END_TOKEN = "</img>"
IMG_CONTEXT_TOKEN = "<IMG_CONTEXT>"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class InternVLBackbone(VLMBackbone):
    """An ``InternVLModel`` with its tokenizer behind the shared ``VLMBackbone`` interface."""

    family = "internvl"

    def __init__(self, model: nn.Module, tokenizer, image_size: int | None = None):
        """
        Args:
            image_size: square input size of the vision tower; None keeps the checkpoint's
                (``vision_config.image_size``, ``image_seq_length`` tokens per image).
        """
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.image_token_id = int(model.config.image_token_id)
        if tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN) != self.image_token_id:
            raise ValueError(
                f"tokenizer maps {IMG_CONTEXT_TOKEN} to {tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)} but the "
                f"model's image_token_id is {self.image_token_id}: tokenizer and weights come from different checkpoints"
            )
        if image_size is None:
            size = model.config.vision_config.image_size
            self.image_size = int(size[0] if isinstance(size, (list, tuple)) else size)
            self.num_image_tokens = int(model.config.image_seq_length)
        else:
            self.image_size = int(image_size)
            self.num_image_tokens = self.image_tokens_for(model.config, self.image_size)
        if not getattr(model.config, "projector_layer_norm", True):
            model.multi_modal_projector.layer_norm = nn.Identity()
        self.register_buffer("_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @staticmethod
    def image_tokens_for(config: PretrainedConfig, image_size: int) -> int:
        """Tokens per image when the vision tower of ``config`` (an ``InternVLConfig``) runs at ``image_size``:
        (image_size // patch)^2 patches, then InternVL's pixel shuffle keeps ``downsample_ratio``^2 of them.

        Raises:
            ValueError: the patch grid does not divide evenly for the pixel shuffle.
        """
        patch = config.vision_config.patch_size
        patch = int(patch[0] if isinstance(patch, (list, tuple)) else patch)
        grid = image_size // patch
        shuffle = round(1 / config.downsample_ratio)
        if grid == 0 or grid % shuffle:
            raise ValueError(
                f"image_size {image_size}: {image_size}//{patch} = {grid} patches per side, which the {shuffle}x{shuffle} "
                f"pixel shuffle cannot split; pick a size whose patch grid is a multiple of {shuffle} "
                f"(e.g. {max(shuffle, grid - grid % shuffle) * patch})"
            )
        return (grid // shuffle) ** 2

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        dtype: torch.dtype | str = torch.float32,
        attn_implementation: str = "sdpa",
        num_layers: int | None = None,
        image_size: int | None = None,
        weightless: bool = False,
        **hub_kwargs,
    ) -> InternVLBackbone:
        """Load a transformers-native InternVL checkpoint (e.g. ``OpenGVLab/InternVL3-1B-hf``) and its tokenizer.

        Args:
            num_layers: keep only the first ``num_layers`` language-model layers.
            image_size: run the vision tower at this square size (None: the checkpoint's).
            weightless: part of every backbone family's signature (Molmo and Prismatic then skip their own weight
                files); InternVL reads weights only through transformers, which ``weightless_pretrained`` patches.
        """
        from transformers import AutoModel, AutoTokenizer

        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        model = AutoModel.from_pretrained(
            name_or_path, dtype=dtype, attn_implementation=attn_implementation, **hub_kwargs
        )
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **hub_kwargs)
        backbone = cls(model, tokenizer, image_size=image_size)
        backbone.truncate_layers(num_layers)
        return backbone

    @property
    def decoder(self) -> nn.Module:
        return self.model.language_model

    def image_placeholder(self, wrap: bool = True) -> str:
        """The text that stands for one image in a prompt.

        Args:
            wrap: surround the image tokens with ``<img>`` / ``</img>`` (InternVL's chat format); VITA-1.5
                splices its image tokens bare (``wrap=False``).
        """
        tokens = IMG_CONTEXT_TOKEN * self.num_image_tokens
        return IMG_START_TOKEN + tokens + IMG_END_TOKEN if wrap else tokens

    def encode_images(self, images: Tensor) -> Tensor:
        """(B, V, 3, H, W) in [0, 1] -> (B, V, N_img, D) image tokens in the language model's input space.

        Images are resized to the checkpoint's square size (bicubic, antialiased) and ImageNet-normalised
        (InternVL's preprocessing, one tile per image).
        """
        b, v = images.shape[:2]
        flat = images.reshape(b * v, *images.shape[2:]).float()
        if flat.shape[-2:] != (self.image_size, self.image_size):
            flat = F.interpolate(
                flat,
                size=(self.image_size, self.image_size),
                mode="bicubic",
                antialias=True,
                align_corners=False,
            )
        flat = ((flat.clamp(0, 1) - self._mean) / self._std).to(self.model.dtype)
        feats = self.model.get_image_features(
            pixel_values=flat,
            vision_feature_layer=self.model.config.vision_feature_layer,
            vision_feature_select_strategy=self.model.config.vision_feature_select_strategy,
            return_dict=True,
        ).pooler_output
        return feats.reshape(b, v, self.num_image_tokens, -1)

    def prepare_inputs(
        self,
        images: Tensor,
        prompts: list[str],
        extras: dict[str, Tensor] | None = None,
        view_mask: Tensor | None = None,
        inline: dict[str, Tensor] | None = None,
        **_,
    ) -> VLMInputs:
        """Tokenise ``prompts`` (each with one ``image_placeholder()`` per view, in view order) and splice in
        the image tokens of ``images`` (B, V, 3, H, W).

        Args:
            extras: name -> (B, n, D) embeddings appended after each prompt (e.g. query tokens).
            view_mask: (B, V) bool; False hides a view's image tokens from attention (absent camera).
            inline: special token -> (B, n, D) embeddings written, in order, at the n occurrences of that
                token in every prompt (e.g. ``{"<state>": ..., "<action>": ...}``); their positions are
                reported in ``extra_positions[token]``. The token must be a single special token of the
                tokenizer and occur exactly n times in each prompt.

        ``images`` may instead be the (B, V, N_img, D) output of ``encode_images`` (a policy that keeps the image
        tokens of past frames encodes each frame once).
        """
        b, v = images.shape[:2]
        if len(prompts) != b:
            raise ValueError(f"got {len(prompts)} prompts for a batch of {b} images")
        if images.dim() == 4 and images.shape[2:] == (self.num_image_tokens, self.hidden_size):
            image_tokens = images  # already encoded
        else:
            image_tokens = self.encode_images(images)  # (B, V, N_img, D)
        embed = self.decoder.embed_tokens
        device = embed.weight.device
        inline = inline or {}
        inline_ids = {name: self._special_token_id(name) for name in inline}
        token_embeds, slots, per_sample_images = [], [], []
        inline_slots: dict[str, list[Tensor]] = {name: [] for name in inline}
        for i, prompt in enumerate(prompts):
            id_list = list(self.tokenizer(prompt, add_special_tokens=False).input_ids)
            ids = torch.tensor(id_list, dtype=torch.long, device=device)
            # slot positions from the token list in plain Python (no data-dependent nonzero() in a traced
            # graph: the prompt is fixed at export, so the positions are constants of it)
            slot = _positions(id_list, self.image_token_id, device)
            if slot.numel() != v * self.num_image_tokens:
                raise ValueError(
                    f"prompt {i} has {slot.numel()} image tokens but the batch has {v} views x {self.num_image_tokens}; "
                    "put one image_placeholder() per view in the prompt"
                )
            for name, token_id in inline_ids.items():
                where = _positions(id_list, token_id, device)
                if where.numel() != inline[name].shape[1]:
                    raise ValueError(
                        f"prompt {i} has {where.numel()} {name} tokens but {inline[name].shape[1]} embeddings were given for them"
                    )
                inline_slots[name].append(where)
            token_embeds.append(embed(ids))
            slots.append(slot)
            per_sample_images.append(image_tokens[i].reshape(-1, image_tokens.shape[-1]))
        inline_segments = {name: (list(inline[name].unbind(0)), inline_slots[name]) for name in inline}
        inputs = assemble_prefix(
            token_embeds, per_sample_images, slots, extras=extras, inline=inline_segments
        )
        if view_mask is not None:
            hidden = ~view_mask.to(device).bool().repeat_interleave(
                self.num_image_tokens, dim=1
            )  # (B, V*N_img)
            rows = torch.arange(b, device=device).unsqueeze(1).expand_as(hidden)
            inputs.attention_mask[rows[hidden], inputs.image_positions[hidden]] = False
        return inputs

    def _special_token_id(self, token: str) -> int:
        """The id of ``token``, which must be one added (never split) token of the tokenizer."""
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        ids = self.tokenizer(token, add_special_tokens=False).input_ids
        if token_id is None or list(ids) != [token_id] or token_id == self.tokenizer.unk_token_id:
            raise ValueError(
                f"the tokenizer has no special token {token!r} (it splits it into {list(ids)}); add it with "
                f"tokenizer.add_special_tokens(...) when converting the checkpoint"
            )
        return int(token_id)


def _positions(ids: list[int], token_id: int, device: torch.device) -> Tensor:
    """(n,) long positions of ``token_id`` in the token list ``ids``, as ``(ids == token_id).nonzero()``."""
    return torch.tensor([j for j, t in enumerate(ids) if t == token_id], dtype=torch.long, device=device)
