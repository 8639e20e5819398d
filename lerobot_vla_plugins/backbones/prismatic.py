"""Prismatic family (Karamcheti et al. 2024) from native transformers parts: DINOv2-with-registers + SigLIP
vision towers, a fused GELU MLP projector and a Qwen2 (or Llama) language model.

VLA-Adapter's backbone ``prism-qwen25-extra-dinosiglip-224px-0_5b`` is this family at DINOv2-L/14 (4 registers)
+ SigLIP-So400m/14 at 224 px + Qwen2.5-0.5B. What the released VLA-Adapter code does, and we reproduce:

* each tower returns the output of its **second-to-last block**, patch tokens only (no CLS/register tokens,
  no final norm): timm's ``get_intermediate_layers(n={depth - 2})``. We keep only the blocks that are used
  (a tower of depth ``d`` is stored with ``d - 1`` layers), so nothing unused is computed or trained;
* the two feature maps are concatenated on the channel axis (1024 + 1152 = 2176 at paper size); views are
  concatenated along the sequence (256 patches per 224 px view);
* the fused projector is ``fc1 (Dv -> 4 Dv), GELU, fc2 (4 Dv -> D), GELU, fc3 (D -> D)``;
* the image tokens are inserted **after the first text token** of the prompt (Qwen has no BOS, so after
  ``<|im_start|>``); the prompt is the released chat string (``prismatic_prompt``).

A Prismatic directory (what ``save_pretrained`` writes, what the VLA-Adapter converter produces from the
released base VLM, what the testing kit builds) holds::

    prismatic_config.json     image size and per-tower normalisation (see PrismaticImageSpec)
    dino/                     Dinov2WithRegistersModel (save_pretrained), already truncated
    siglip/                   SiglipVisionModel (save_pretrained, no pooling head), already truncated
    llm/                      Qwen2Model / LlamaModel + its tokenizer (save_pretrained)
    projector.safetensors     fc1/fc2/fc3

Dimension names: B batch, V views, N tokens, D LLM width, Dv fused vision width.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from .base import VLMBackbone, VLMInputs, assemble_prefix

PRISMATIC_CONFIG_NAME = "prismatic_config.json"
PROJECTOR_WEIGHTS_NAME = "projector.safetensors"
FORMAT = "lerobot-vla-plugins/prismatic-v1"

#: The system prompt and user turn of the released Qwen prompt builder (``QwenPromptBuilder``); the released
#: code deletes the last three tokens of the rendered conversation, so the prompt ends with the assistant header.
QWEN_SYSTEM_PROMPT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def prismatic_prompt(task: str) -> str:
    """The prompt VLA-Adapter feeds its Qwen2.5 backbone for instruction ``task`` (released
    ``openvla_utils.py`` and ``datasets.py``: the instruction is lower-cased)."""
    return (
        f"<|im_start|>system\n{QWEN_SYSTEM_PROMPT}<|im_end|>\n"
        f"<|im_start|>user\nWhat action should the robot take to {task.lower()}?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


@dataclass
class PrismaticImageSpec:
    """Image preprocessing shared by the towers (``prismatic_config.json``).

    Defaults are the released processor's (``preprocessor_config.json`` ``tvf_*``): resize-naive to 224 px,
    bicubic with antialiasing, DINO normalised with the bf16-rounded ImageNet values it actually applies,
    SigLIP with mean = std = 0.5.
    """

    image_size: int = 224
    dino_mean: list[float] = field(default_factory=lambda: [0.484375, 0.455078125, 0.40625])
    dino_std: list[float] = field(default_factory=lambda: [0.228515625, 0.2236328125, 0.224609375])
    siglip_mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    siglip_std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])


def crop_and_resize(images: Tensor, area: float, size: int, offsets: Tensor | None = None) -> Tensor:
    """Square crop of ``area`` (fraction of the image area) resized to ``size`` x ``size``: the released
    OpenVLA-OFT / VLA-Adapter crop (``experiments/robot/openvla_utils.py`` ``crop_and_resize``, which calls
    ``tf.image.crop_and_resize``).

    images (N, 3, H, W) in [0, 1] -> (N, 3, size, size) in [0, 1]. The box's sides are sqrt(area) of the image's,
    its corner at ``offsets`` (N, 2) = (top, left) in fractions of the image (default: centred,
    (1 - sqrt(area)) / 2). Sampling is TF's kernel, in float32 in its order of operations: output row i reads
    the input at y = y1 (H - 1) + i (y2 - y1) (H - 1) / (size - 1), bilinear between floor(y) and ceil(y), first
    along x then along y. The released evaluation then stores the crop as an 8-bit image
    (``tf.image.convert_image_dtype``: trunc(255.5 x)) before its processor reads it; so do we, so that the
    towers get the same pixel values.
    """
    n, _, h, w = images.shape
    dev = images.device
    # sqrt of the float32 area, correctly rounded to float32 (as TF's tf.sqrt(crop_scale))
    side = torch.tensor(min(max(math.sqrt(float(torch.tensor(area, dtype=torch.float32))), 0.0), 1.0)).to(dev)
    if offsets is None:
        offsets = ((1 - side) / 2).expand(n, 2)
    offsets = offsets.to(dev, torch.float32)
    idx = torch.arange(size, device=dev, dtype=torch.float32)

    def sample_points(start: Tensor, extent: int) -> tuple[Tensor, Tensor, Tensor]:  # (N,) -> 3 x (N, size)
        end = start + side
        scale = (end - start) * (extent - 1) / (size - 1)
        pos = start[:, None] * (extent - 1) + idx[None] * scale[:, None]
        low = torch.floor(pos)
        return low.long().clamp(0, extent - 1), torch.ceil(pos).long().clamp(0, extent - 1), pos - low

    top, bottom, y_lerp = sample_points(offsets[:, 0], h)
    left, right, x_lerp = sample_points(offsets[:, 1], w)
    x = images.float()

    def rows(index: Tensor) -> Tensor:  # (N, 3, size, W)
        return torch.gather(x, 2, index[:, None, :, None].expand(n, 3, size, w))

    def cols(t: Tensor, index: Tensor) -> Tensor:  # (N, 3, size, size)
        return torch.gather(t, 3, index[:, None, None, :].expand(n, 3, size, size))

    xl = x_lerp[:, None, None, :]
    t_rows, b_rows = rows(top), rows(bottom)
    upper = cols(t_rows, left) + (cols(t_rows, right) - cols(t_rows, left)) * xl
    lower = cols(b_rows, left) + (cols(b_rows, right) - cols(b_rows, left)) * xl
    out = upper + (lower - upper) * y_lerp[:, None, :, None]
    return torch.trunc(out.clamp(0, 1) * 255.5) / 255  # the released 8-bit round trip


class PrismaticProjector(nn.Module):
    """The fused-backbone MLP projector ("fused-gelu-mlp"): (..., Dv) -> (..., D)."""

    def __init__(self, vision_dim: int, llm_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, 4 * vision_dim)
        self.fc2 = nn.Linear(4 * vision_dim, llm_dim)
        self.fc3 = nn.Linear(llm_dim, llm_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc3(F.gelu(self.fc2(F.gelu(self.fc1(x)))))


def _load_tower(
    cls, config_cls, name_or_path, truncate: bool, load_weights: bool, dtype, attn, **config_overrides
):
    """Load one vision tower, keeping only the blocks up to the second-to-last one when ``truncate``."""
    config = config_cls.from_pretrained(str(name_or_path))
    for k, v in config_overrides.items():
        setattr(config, k, v)
    if truncate:
        if config.num_hidden_layers < 2:
            raise ValueError(
                f"{name_or_path}: a tower needs at least 2 blocks to take the second-to-last one"
            )
        config.num_hidden_layers -= 1
    if load_weights:
        return cls.from_pretrained(str(name_or_path), config=config, dtype=dtype, attn_implementation=attn)
    config._attn_implementation = attn
    return cls._from_config(config, dtype=dtype)


class PrismaticBackbone(VLMBackbone):
    """DINOv2 + SigLIP + fused projector + decoder-only LM behind the shared ``VLMBackbone`` interface."""

    family = "prismatic"

    def __init__(
        self,
        dino: nn.Module,
        siglip: nn.Module,
        projector: PrismaticProjector,
        llm: nn.Module,
        tokenizer,
        image_spec: PrismaticImageSpec | None = None,
    ):
        super().__init__()
        self.dino = dino
        self.siglip = siglip
        self.projector = projector
        self.llm = llm
        self.tokenizer = tokenizer
        self.image_spec = image_spec or PrismaticImageSpec()
        s = self.image_spec
        for tower, patch in (("dino", dino.config.patch_size), ("siglip", siglip.config.patch_size)):
            if s.image_size % patch:
                raise ValueError(
                    f"image_size {s.image_size} is not a multiple of the {tower} patch size {patch}"
                )
        if dino.config.patch_size != siglip.config.patch_size:
            raise ValueError(
                "the DINOv2 and SigLIP towers must use the same patch size to concatenate their patches"
            )
        self.num_image_tokens = (s.image_size // siglip.config.patch_size) ** 2
        for name in ("dino_mean", "dino_std", "siglip_mean", "siglip_std"):
            self.register_buffer(
                f"_{name}", torch.tensor(getattr(s, name)).view(1, 3, 1, 1), persistent=False
            )

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_parts(
        cls,
        dino: str,
        siglip: str,
        llm: str,
        dtype: torch.dtype | str = torch.float32,
        attn_implementation: str = "sdpa",
        num_layers: int | None = None,
        load_weights: bool = True,
        image_spec: PrismaticImageSpec | None = None,
    ) -> PrismaticBackbone:
        """Assemble the family from separately published parts (Hub ids or local ``save_pretrained`` dirs):
        full-depth towers (truncated here to their second-to-last block) and a language model with its
        tokenizer. The projector is freshly initialised (no native-layout Prismatic projector is published;
        convert the released base VLM to get the aligned one)."""
        from transformers import (
            AutoConfig,
            AutoModel,
            AutoTokenizer,
            Dinov2WithRegistersModel,
            SiglipVisionConfig,
            SiglipVisionModel,
        )

        dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        dino_m = _load_tower(
            Dinov2WithRegistersModel, AutoConfig, dino, True, load_weights, dtype, attn_implementation
        )
        siglip_m = _load_tower(
            SiglipVisionModel,
            SiglipVisionConfig,
            siglip,
            True,
            load_weights,
            dtype,
            attn_implementation,
            vision_use_head=False,
        )
        if load_weights:
            llm_m = AutoModel.from_pretrained(llm, dtype=dtype, attn_implementation=attn_implementation)
        else:
            llm_cfg = AutoConfig.from_pretrained(llm)
            llm_cfg._attn_implementation = attn_implementation
            llm_m = AutoModel.from_config(llm_cfg, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(llm)
        spec = image_spec or PrismaticImageSpec(image_size=int(_square(siglip_m.config.image_size)))
        projector = PrismaticProjector(
            dino_m.config.hidden_size + siglip_m.config.hidden_size, llm_m.config.hidden_size
        )
        projector.to(dtype)
        backbone = cls(dino_m, siglip_m, projector, llm_m, tokenizer, spec)
        backbone.truncate_layers(num_layers)
        return backbone

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        dtype: torch.dtype | str = torch.float32,
        attn_implementation: str = "sdpa",
        num_layers: int | None = None,
        load_weights: bool = True,
        weightless: bool = False,
        **_,
    ) -> PrismaticBackbone:
        """Load a Prismatic directory (layout in the module docstring).

        Args:
            load_weights: False builds every part from its config with random weights (used when a policy
                checkpoint supplies all weights itself).
            weightless: the caller builds inside ``weightless_pretrained`` (the towers and the language model come
                from their configs): keep the projector's random initialisation instead of reading its weight file.
            num_layers: keep only the first ``num_layers`` language-model layers.
        """
        from safetensors.torch import load_file
        from transformers import (
            AutoConfig,
            AutoModel,
            AutoTokenizer,
            Dinov2WithRegistersModel,
            SiglipVisionConfig,
            SiglipVisionModel,
        )

        path = Path(name_or_path).expanduser()
        cfg_file = path / PRISMATIC_CONFIG_NAME
        if not cfg_file.is_file():
            raise FileNotFoundError(
                f"{path} is not a Prismatic directory (no {PRISMATIC_CONFIG_NAME}); build one with "
                "`lerobot-vla-adapter-convert base-vlm ...` or PrismaticBackbone.save_pretrained"
            )
        meta = json.loads(cfg_file.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{cfg_file}: unknown format {meta.get('format')!r} (expected {FORMAT!r})")
        dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        dino_m = _load_tower(
            Dinov2WithRegistersModel,
            AutoConfig,
            path / "dino",
            False,
            load_weights,
            dtype,
            attn_implementation,
        )
        siglip_m = _load_tower(
            SiglipVisionModel,
            SiglipVisionConfig,
            path / "siglip",
            False,
            load_weights,
            dtype,
            attn_implementation,
            vision_use_head=False,
        )
        if load_weights:
            llm_m = AutoModel.from_pretrained(
                str(path / "llm"), dtype=dtype, attn_implementation=attn_implementation
            )
        else:
            llm_cfg = AutoConfig.from_pretrained(str(path / "llm"))
            llm_cfg._attn_implementation = attn_implementation
            llm_m = AutoModel.from_config(llm_cfg, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(path / "llm"))
        projector = PrismaticProjector(
            dino_m.config.hidden_size + siglip_m.config.hidden_size, llm_m.config.hidden_size
        )
        projector.to(dtype)
        if load_weights and not weightless:
            projector.load_state_dict(load_file(str(path / PROJECTOR_WEIGHTS_NAME)))
        backbone = cls(dino_m, siglip_m, projector, llm_m, tokenizer, PrismaticImageSpec(**meta["image"]))
        backbone.truncate_layers(num_layers)
        return backbone

    def save_pretrained(self, path: str | Path, weights: bool = True) -> Path:
        """Write a Prismatic directory. ``weights=False`` writes only configs and the tokenizer (a policy
        checkpoint stores the weights in its own ``model.safetensors``). Save weights only from a backbone
        without injected adapters (LoRA renames the wrapped layers)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, module in (("dino", self.dino), ("siglip", self.siglip), ("llm", self.llm)):
            if weights:
                module.save_pretrained(path / name)
            else:
                module.config.save_pretrained(path / name)
        self.tokenizer.save_pretrained(path / "llm")
        if weights:
            state = {k: v.detach().contiguous().cpu() for k, v in self.projector.state_dict().items()}
            save_file(state, str(path / PROJECTOR_WEIGHTS_NAME))
        (path / PRISMATIC_CONFIG_NAME).write_text(
            json.dumps({"format": FORMAT, "image": asdict(self.image_spec)}, indent=2)
        )
        return path

    # ------------------------------------------------------------------ interface
    @property
    def decoder(self) -> nn.Module:
        return self.llm

    @property
    def context_length(self) -> int:
        return int(self.llm.config.max_position_embeddings)

    def encode_images(self, images: Tensor) -> Tensor:
        """(B, V, 3, H, W) in [0, 1] -> (B, V, N_img, D) image tokens in the language model's input space.

        Resize-naive to ``image_size`` (bicubic, antialiased), per-tower normalisation, second-to-last block of
        each tower without prefix tokens, channel concatenation (B, V, N_img, Dv), fused projector.
        """
        b, v = images.shape[:2]
        size = self.image_spec.image_size
        flat = images.reshape(b * v, *images.shape[2:]).float()
        if flat.shape[-2:] != (size, size):
            flat = F.interpolate(flat, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        flat = flat.clamp(0, 1)
        dtype = self.projector.fc1.weight.dtype
        dino_in = ((flat - self._dino_mean) / self._dino_std).to(dtype)
        siglip_in = ((flat - self._siglip_mean) / self._siglip_std).to(dtype)
        dino = self.dino
        dino_h = dino.encoder(dino.embeddings(dino_in)).last_hidden_state
        dino_patches = dino_h[:, 1 + dino.config.num_register_tokens :]  # drop CLS + registers
        siglip = self.siglip.vision_model
        siglip_patches = siglip.encoder(inputs_embeds=siglip.embeddings(siglip_in)).last_hidden_state
        fused = torch.cat([dino_patches, siglip_patches], dim=-1)  # (B*V, N_img, Dv)
        tokens = self.projector(fused)
        return tokens.reshape(b, v, self.num_image_tokens, -1)

    def tokenize(self, prompt: str) -> Tensor:
        """Token ids of ``prompt`` (1-D long); no special tokens are added (Qwen has no BOS)."""
        return self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids[0]

    def prepare_inputs(
        self,
        images: Tensor,
        prompts: list[str],
        extras: dict[str, Tensor] | None = None,
        image_tokens: Tensor | None = None,
        **_,
    ) -> VLMInputs:
        """Tokenise ``prompts`` (full prompt strings, e.g. ``prismatic_prompt(task)``) and place the image tokens
        of ``images`` (B, V, 3, H, W) after each prompt's first token; ``extras`` (name -> (B, n, D)) follow the
        prompt (VLA-Adapter's ActionQuery).

        Args:
            image_tokens: (B, V, N_img, D) from ``encode_images(images)`` when the caller already has them.

        Raises:
            ValueError: batch/prompt mismatch, or a sequence longer than the language model's context.
        """
        b, v = images.shape[:2]
        if len(prompts) != b:
            raise ValueError(f"got {len(prompts)} prompts for a batch of {b} images")
        if image_tokens is None:
            image_tokens = self.encode_images(images)  # (B, V, N_img, D)
        embed = self.decoder.embed_tokens
        device = embed.weight.device
        n_img = v * self.num_image_tokens
        n_extra = sum(e.shape[1] for e in (extras or {}).values())
        token_embeds, slots, per_sample = [], [], []
        for i, prompt in enumerate(prompts):
            ids = self.tokenize(prompt).to(device)
            if ids.numel() == 0:
                raise ValueError(f"prompt {i} is empty")
            total = ids.numel() + n_img + n_extra
            if total > self.context_length:
                raise ValueError(
                    f"prompt {i} has {ids.numel()} tokens; with {n_img} image tokens and {n_extra} extra tokens the "
                    f"sequence is {total} tokens, longer than the language model's context of {self.context_length} "
                    "(max_position_embeddings): shorten the task text"
                )
            e = embed(ids)
            # image patches go after the first text token (released _build_multimodal_attention)
            token_embeds.append(torch.cat([e[:1], e.new_zeros(n_img, e.shape[-1]), e[1:]], dim=0))
            slots.append(torch.arange(1, 1 + n_img, device=device))
            per_sample.append(image_tokens[i].reshape(n_img, -1))
        return assemble_prefix(token_embeds, per_sample, slots, extras=extras)


def _square(size) -> int:
    return int(size[0] if isinstance(size, (list, tuple)) else size)
