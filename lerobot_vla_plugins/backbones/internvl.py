"""InternVL family (native transformers ``InternVLModel``): InternViT + pixel-shuffle MLP projector + Qwen2.

Used by VITA-VLA (VITA-1.5 = InternViT-300M + MLP + Qwen2.5-7B, converted to this layout) and selectable
as A1's backbone. Evo-1 uses the same family through LeRobot's own ``evo1`` policy.

Prompts carry one image placeholder per view (``image_placeholder()``: ``<img>`` + ``<IMG_CONTEXT>`` x
N_img + ``</img>``), exactly as InternVL's chat format and Evo-1's prompt place them; the image tokens are
spliced into the ``<IMG_CONTEXT>`` positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import VLMBackbone, VLMInputs, assemble_prefix

IMG_START_TOKEN = "<img>"
IMG_END_TOKEN = "</img>"
IMG_CONTEXT_TOKEN = "<IMG_CONTEXT>"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class InternVLBackbone(VLMBackbone):
    """An ``InternVLModel`` with its tokenizer behind the shared ``VLMBackbone`` interface."""

    family = "internvl"

    def __init__(self, model: nn.Module, tokenizer):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.image_token_id = int(model.config.image_token_id)
        if tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN) != self.image_token_id:
            raise ValueError(
                f"tokenizer maps {IMG_CONTEXT_TOKEN} to {tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)} but the "
                f"model's image_token_id is {self.image_token_id}: tokenizer and weights come from different checkpoints"
            )
        size = model.config.vision_config.image_size
        self.image_size = int(size[0] if isinstance(size, (list, tuple)) else size)
        self.num_image_tokens = int(model.config.image_seq_length)
        self.register_buffer("_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        dtype: torch.dtype | str = torch.float32,
        attn_implementation: str = "sdpa",
        num_layers: int | None = None,
        **hub_kwargs,
    ) -> InternVLBackbone:
        """Load a transformers-native InternVL checkpoint (e.g. ``OpenGVLab/InternVL3-1B-hf``) and its tokenizer.

        Args:
            num_layers: keep only the first ``num_layers`` language-model layers.
        """
        from transformers import AutoModel, AutoTokenizer

        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        model = AutoModel.from_pretrained(name_or_path, dtype=dtype, attn_implementation=attn_implementation, **hub_kwargs)
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **hub_kwargs)
        backbone = cls(model, tokenizer)
        backbone.truncate_layers(num_layers)
        return backbone

    @property
    def decoder(self) -> nn.Module:
        return self.model.language_model

    def image_placeholder(self) -> str:
        """The text that stands for one image in a prompt."""
        return IMG_START_TOKEN + IMG_CONTEXT_TOKEN * self.num_image_tokens + IMG_END_TOKEN

    def encode_images(self, images: Tensor) -> Tensor:
        """(B, V, 3, H, W) in [0, 1] -> (B, V, N_img, D) image tokens in the language model's input space.

        Images are resized to the checkpoint's square size (bicubic, antialiased) and ImageNet-normalised
        (InternVL's preprocessing, one tile per image).
        """
        b, v = images.shape[:2]
        flat = images.reshape(b * v, *images.shape[2:]).float()
        if flat.shape[-2:] != (self.image_size, self.image_size):
            flat = F.interpolate(flat, size=(self.image_size, self.image_size), mode="bicubic", antialias=True, align_corners=False)
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
        **_,
    ) -> VLMInputs:
        """Tokenise ``prompts`` (each with one ``image_placeholder()`` per view, in view order) and splice in
        the image tokens of ``images`` (B, V, 3, H, W).

        Args:
            extras: name -> (B, n, D) embeddings appended after each prompt (e.g. query tokens).
            view_mask: (B, V) bool; False hides a view's image tokens from attention (absent camera).
        """
        b, v = images.shape[:2]
        if len(prompts) != b:
            raise ValueError(f"got {len(prompts)} prompts for a batch of {b} images")
        image_tokens = self.encode_images(images)  # (B, V, N_img, D)
        embed = self.decoder.embed_tokens
        device = embed.weight.device
        token_embeds, slots, per_sample_images = [], [], []
        for i, prompt in enumerate(prompts):
            ids = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids[0].to(device)
            slot = (ids == self.image_token_id).nonzero().squeeze(-1)
            if slot.numel() != v * self.num_image_tokens:
                raise ValueError(
                    f"prompt {i} has {slot.numel()} image tokens but the batch has {v} views x {self.num_image_tokens}; "
                    "put one image_placeholder() per view in the prompt"
                )
            token_embeds.append(embed(ids))
            slots.append(slot)
            per_sample_images.append(image_tokens[i].reshape(-1, image_tokens.shape[-1]))
        inputs = assemble_prefix(token_embeds, per_sample_images, slots, extras=extras)
        if view_mask is not None:
            hidden = ~view_mask.to(device).bool().repeat_interleave(self.num_image_tokens, dim=1)  # (B, V*N_img)
            rows = torch.arange(b, device=device).unsqueeze(1).expand_as(hidden)
            inputs.attention_mask[rows[hidden], inputs.image_positions[hidden]] = False
        return inputs
