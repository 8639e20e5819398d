"""Molmo-style family (A1's backbone): CLIP ViT-L/14-336 features from two layers, 2x2 attention pooling, a
SwiGLU MLP connector and a Qwen2 decoder, built from native transformers parts (``CLIPVisionModel``,
``Qwen2Model``) plus the small connector defined here.

What Molmo-7B-D (and A1, which fine-tunes it) does, and how it is reproduced (A1 ``a1/model.py``,
``a1/image_vit.py``, ``a1/data/model_preprocessor.py``):

* image mode "resize": each view is resized to 336x336 keeping its aspect ratio (bilinear, antialiased) and
  zero-padded, then normalised with the OpenAI CLIP mean/std; a per-patch padding fraction is kept;
* ViT: OpenAI CLIP ViT-L/14-336 truncated to 23 of its 24 layers; the features of layers -2 and -9 (of the 23,
  i.e. ``hidden_states[22]`` and ``[15]`` of transformers' CLIP) are concatenated per patch (2048 channels) and
  the CLS token is dropped; fully padded patches get ``pad_embed[0]`` added, partially padded ``pad_embed[1]``;
* pooling "attention_meanq": every 2x2 block of patches is pooled by one multi-head attention whose query is
  the block mean (``wq, wk, wv`` 2048 -> 1024, ``wo`` 1024 -> 1024, 16 heads, with biases): 24x24 -> 12x12;
* connector: ``w2(silu(w1 x) * w3 x)`` (1024 -> 18944 -> 3584, no biases);
* prompt layout: ``[BOS] + per view: [<im_start>] + 12 x ([<im_patch>] x 12 + [<im_col>]) + [<im_end>] + text``,
  the pooled features *added* to the ``<im_patch>`` embeddings; the image special tokens are the 128 extra
  embedding rows after the base vocabulary (ids V, V+1, V+2, V+3 for im_start, im_end, im_patch, im_col);
  Qwen2 has no BOS, Molmo uses ``<|endoftext|>``;
* language model: Qwen2-7B (its fused ``att_proj``/``ff_proj`` are split into q/k/v and gate/up by the converter,
  ``lerobot_vla_plugins.convert.molmo``).

Checkpoint directory (``save_pretrained`` / the converter): ``molmo_backbone.json``, ``vision/`` (a
``CLIPVisionModel``), ``language_model/`` (a ``Qwen2Model``), ``connector.safetensors`` and the tokenizer.
``from_pretrained`` also accepts ``"<clip id>+<qwen2 id>"`` (e.g. the default
``"openai/clip-vit-large-patch14-336+Qwen/Qwen2-7B"``): the two pretrained parts with a freshly initialised
connector and image-token embeddings (Molmo's own connector weights come with a converted Molmo-7B-D).
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

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: The text that stands for one image in a prompt (Molmo's IMAGE_PROMPT); with none, images go first.
IMAGE_PROMPT = "<|image|>"
CONFIG_NAME = "molmo_backbone.json"
CONNECTOR_WEIGHTS = "connector.safetensors"
#: Molmo-7B-D's extra tokens, in id order after the base vocabulary (a1/tokenizer.py EXTRA_TOKENS).
EXTRA_TOKENS = ("<im_start>", "<im_end>", "<im_patch>", "<im_col>", IMAGE_PROMPT)
VIEW_SLOTS = ("own", "released_a1")


@dataclass
class MolmoConfig:
    """The parts of Molmo that are not a transformers config (stored as ``molmo_backbone.json``).

    Attributes:
        vision_feature_layers: ViT layers whose outputs are concatenated, negative = from the last kept layer.
        vision_num_layers: ViT layers kept (Molmo keeps 23 of CLIP ViT-L's 24).
        pooling: (h, w) patch block pooled into one image token.
        projector_hidden_size: hidden width of the SwiGLU connector.
        image_size: square input size of the ViT.
        base_vocab_size: rows of the base embedding; the image tokens are the rows after it.
        additional_vocab_size: extra embedding rows (Molmo: 128).
        use_col_tokens: an ``<im_col>`` token ends every row of image tokens.
        view_slots: where the features of several views go. ``"own"``: each view into its own ``<im_patch>``
            tokens. ``"released_a1"``: as A1's released preprocessor does for a view list without ``<|image|>``
            placeholders (``MultiModalPreprocessor``: every view's ``image_input_idx`` points at the first view's
            patch tokens, so ``x[idx] += features`` leaves the first view's slots with the *last* view's features,
            as PyTorch's index_put on CPU does, and the other views' patch tokens with their bare embedding).
            The released A1 checkpoints were trained that way; ``lerobot-a1-convert`` sets it for them.
    """

    vision_feature_layers: list[int] = field(default_factory=lambda: [-2, -9])
    vision_num_layers: int = 23
    pooling: list[int] = field(default_factory=lambda: [2, 2])
    projector_hidden_size: int = 18944
    image_size: int = 336
    base_vocab_size: int = 152064
    additional_vocab_size: int = 128
    use_col_tokens: bool = True
    view_slots: str = "own"

    @classmethod
    def load(cls, path: Path) -> MolmoConfig:
        data = json.loads(Path(path).read_text())
        data.pop("family", None)
        return cls(**data)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps({"family": "molmo", **asdict(self)}, indent=2))

    def __post_init__(self):
        self.vision_feature_layers = list(self.vision_feature_layers)
        self.pooling = list(self.pooling)
        if self.view_slots not in VIEW_SLOTS:
            raise ValueError(f"molmo: view_slots={self.view_slots!r} is not one of {list(VIEW_SLOTS)}")


class MolmoAttentionPool(nn.Module):
    """Multi-head attention pooling of a patch block with the block mean as the query ("attention_meanq").

    (M, P, C_in) blocks of P patches -> (M, C_out).
    """

    def __init__(self, in_dim: int, num_heads: int, head_dim: int, out_dim: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.wq = nn.Linear(in_dim, num_heads * head_dim)
        self.wk = nn.Linear(in_dim, num_heads * head_dim)
        self.wv = nn.Linear(in_dim, num_heads * head_dim)
        self.wo = nn.Linear(num_heads * head_dim, out_dim)

    def forward(self, blocks: Tensor) -> Tensor:
        m, p, _ = blocks.shape
        query = blocks.mean(dim=1, keepdim=True)
        q = self.wq(query).view(m, 1, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.wk(blocks).view(m, p, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.wv(blocks).view(m, p, self.num_heads, self.head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # (M, H, 1, Dh)
        return self.wo(out.transpose(1, 2).reshape(m, self.num_heads * self.head_dim))


class MolmoProjector(nn.Module):
    """SwiGLU connector ``w2(silu(w1 x) * w3 x)`` (Molmo's ``ImageProjectorMLP``), no biases."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.w1 = nn.Linear(in_dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, out_dim, bias=False)
        self.w3 = nn.Linear(in_dim, hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class MolmoConnector(nn.Module):
    """Padding embeddings, 2x2 attention pooling and the MLP connector (Molmo's ``vision_backbone`` minus the ViT)."""

    def __init__(self, cfg: MolmoConfig, vision_hidden: int, vision_heads: int, text_hidden: int):
        super().__init__()
        feat = vision_hidden * len(cfg.vision_feature_layers)
        self.pad_embed = nn.Parameter(torch.zeros(2, feat))
        self.image_pooling_2d = MolmoAttentionPool(
            feat, vision_heads, vision_hidden // vision_heads, vision_hidden
        )
        self.image_projector = MolmoProjector(vision_hidden, cfg.projector_hidden_size, text_hidden)


def resize_and_pad(images: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Molmo's "resize" image mode on a batch: (N, 3, H, W) in [0, 1] -> (N, 3, size, size) and a (N, size, size)
    float mask (1 = image, 0 = padding). Aspect ratio kept, bilinear antialiased, centred zero padding."""
    n, _, h, w = images.shape
    scale = min(size / h, size / w)
    sh, sw = int(h * scale), int(w * scale)
    x = images.float()
    if (sh, sw) != (h, w):
        x = F.interpolate(x, size=(sh, sw), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    top, left = (size - sh) // 2, (size - sw) // 2
    out = x.new_zeros(n, 3, size, size)
    out[:, :, top : top + sh, left : left + sw] = x
    mask = x.new_zeros(n, size, size)
    mask[:, top : top + sh, left : left + sw] = 1.0
    return out, mask


class MolmoBackbone(VLMBackbone):
    """A Molmo-style VLM (``vision`` CLIP ViT, ``connector``, ``language_model`` Qwen2) behind ``VLMBackbone``."""

    family = "molmo"

    def __init__(
        self,
        vision: nn.Module,
        connector: MolmoConnector,
        language_model: nn.Module,
        tokenizer,
        cfg: MolmoConfig,
    ):
        super().__init__()
        self.vision = vision
        self.connector = connector
        self.language_model = language_model
        self.tokenizer = tokenizer
        self.cfg = cfg
        vcfg = vision.config
        if vcfg.image_size != cfg.image_size:
            raise ValueError(
                f"molmo: the ViT takes {vcfg.image_size}px images but molmo_backbone.json says {cfg.image_size}"
            )
        n_vit = len(vision.vision_model.encoder.layers)
        self._feature_layers = [layer if layer >= 0 else n_vit + layer for layer in cfg.vision_feature_layers]
        if not all(0 <= layer < n_vit for layer in self._feature_layers):
            raise ValueError(
                f"molmo: vision_feature_layers {cfg.vision_feature_layers} do not exist in a ViT with {n_vit} layers"
            )
        grid = cfg.image_size // vcfg.patch_size
        self.patch_grid = grid
        ph, pw = cfg.pooling
        self.token_grid = (math.ceil(grid / ph), math.ceil(grid / pw))
        self.num_image_tokens = self.token_grid[0] * self.token_grid[1]
        rows = language_model.embed_tokens.weight.shape[0]
        if rows != cfg.base_vocab_size + cfg.additional_vocab_size:
            raise ValueError(
                f"molmo: the language model has {rows} embedding rows, expected base_vocab_size + additional_vocab_size = "
                f"{cfg.base_vocab_size} + {cfg.additional_vocab_size}"
            )
        base = cfg.base_vocab_size
        self.im_start_id, self.im_end_id, self.im_patch_id, self.im_col_id = (
            base,
            base + 1,
            base + 2,
            base + 3,
        )
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if bos is None:
            raise ValueError(
                "molmo: the tokenizer has neither a BOS nor an EOS token to start the prompt with"
            )
        self.bos_id = int(bos)
        self.register_buffer("_mean", torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        dtype: torch.dtype | str = torch.float32,
        attn_implementation: str = "sdpa",
        num_layers: int | None = None,
        weightless: bool = False,
        **hub_kwargs,
    ) -> MolmoBackbone:
        """Load a Molmo-style backbone.

        Args:
            name_or_path: a directory written by ``save_pretrained`` or by the Molmo-7B-D converter, or
                ``"<clip vision id or dir>+<qwen2 id or dir>"`` to assemble the two pretrained parts with a new
                connector (A1's default ``"openai/clip-vit-large-patch14-336+Qwen/Qwen2-7B"``).
            num_layers: keep only the first ``num_layers`` language-model layers.
            weightless: the caller builds inside ``weightless_pretrained`` (the towers come from their configs):
                keep the connector's random initialisation instead of reading its weight file.
        """
        from transformers import AutoTokenizer, CLIPVisionConfig, CLIPVisionModel, Qwen2Model

        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        kw = {"dtype": dtype, "attn_implementation": attn_implementation, **hub_kwargs}
        path = Path(str(name_or_path)).expanduser()
        if (path / CONFIG_NAME).is_file():
            cfg = MolmoConfig.load(path / CONFIG_NAME)
            vision = CLIPVisionModel.from_pretrained(str(path / "vision"), **kw)
            lm = Qwen2Model.from_pretrained(str(path / "language_model"), **kw)
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            connector = MolmoConnector(
                cfg, vision.config.hidden_size, vision.config.num_attention_heads, lm.config.hidden_size
            )
            connector.to(device=lm.embed_tokens.weight.device, dtype=dtype)
            if not weightless:
                from safetensors.torch import load_file

                connector.load_state_dict(load_file(str(path / CONNECTOR_WEIGHTS)))
        elif "+" in str(name_or_path):
            vision_id, lm_id = str(name_or_path).split("+", 1)
            vcfg = CLIPVisionConfig.from_pretrained(vision_id, **hub_kwargs)
            cfg = MolmoConfig(
                image_size=int(vcfg.image_size), vision_num_layers=int(vcfg.num_hidden_layers) - 1
            )
            vcfg.num_hidden_layers = cfg.vision_num_layers  # Molmo drops the last ViT layer
            vision = CLIPVisionModel.from_pretrained(vision_id, config=vcfg, **kw)
            lm = Qwen2Model.from_pretrained(lm_id, **kw)
            tokenizer = AutoTokenizer.from_pretrained(lm_id, **hub_kwargs)
            cfg.base_vocab_size = int(lm.embed_tokens.weight.shape[0])
            cfg.projector_hidden_size = int(lm.config.intermediate_size)
            _extend_embeddings(lm, cfg.additional_vocab_size)
            connector = MolmoConnector(cfg, vcfg.hidden_size, vcfg.num_attention_heads, lm.config.hidden_size)
            connector.to(device=lm.embed_tokens.weight.device, dtype=dtype)
        else:
            raise ValueError(
                f"molmo: {name_or_path!r} is neither a Molmo backbone directory (with {CONFIG_NAME}; convert Molmo-7B-D "
                "with lerobot_vla_plugins.convert.molmo) nor '<clip vision id>+<qwen2 id>'"
            )
        backbone = cls(vision, connector, lm, tokenizer, cfg)
        backbone.truncate_layers(num_layers)
        return backbone

    def save_pretrained(self, path: str | Path) -> Path:
        """Write the checkpoint directory described in the module docstring."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.cfg.save(path / CONFIG_NAME)
        self.vision.save_pretrained(path / "vision")
        self.language_model.save_pretrained(path / "language_model")
        save_file(
            {k: v.contiguous() for k, v in self.connector.state_dict().items()}, str(path / CONNECTOR_WEIGHTS)
        )
        self.tokenizer.save_pretrained(path)
        return path

    # ------------------------------------------------------------------ VLMBackbone
    @property
    def decoder(self) -> nn.Module:
        return self.language_model

    def image_placeholder(self) -> str:
        """The text that stands for one view in a prompt; prompts without any put all views first (Molmo)."""
        return IMAGE_PROMPT

    def _vit_features(self, pixels: Tensor) -> Tensor:
        """(N, 3, S, S) normalised -> (N, grid*grid, C) concatenated features of the chosen ViT layers, no CLS."""
        vm = self.vision.vision_model
        hidden = vm.pre_layrnorm(vm.embeddings(pixels))
        wanted = dict.fromkeys(self._feature_layers)
        for i, layer in enumerate(vm.encoder.layers[: max(self._feature_layers) + 1]):
            hidden = layer(hidden, None)
            if i in wanted:
                wanted[i] = hidden
        feats = torch.cat([wanted[layer] for layer in self._feature_layers], dim=-1)
        return feats[:, 1:]

    def encode_images(self, images: Tensor) -> Tensor:
        """(B, V, 3, H, W) in [0, 1] -> (B, V, N_img, D) image features in the language model's input space."""
        b, v = images.shape[:2]
        s, ps, g = self.cfg.image_size, self.vision.config.patch_size, self.patch_grid
        flat = images.reshape(b * v, *images.shape[2:])
        pixels, mask = resize_and_pad(flat, s)
        dtype = self.vision.dtype
        pixels = ((pixels - self._mean) / self._std).to(dtype)
        feats = self._vit_features(pixels)  # (N, g*g, C)
        # per-patch padding fraction -> pad_embed[0] for fully padded, pad_embed[1] for partially padded patches
        frac = mask.reshape(b * v, g, ps, g, ps).mean(dim=(2, 4)).reshape(b * v, g * g, 1).to(feats.dtype)
        pad = self.connector.pad_embed.to(feats.dtype)
        feats = feats + pad[0] * (frac == 0) + pad[1] * ((frac > 0) & (frac < 1))
        c = feats.shape[-1]
        ph, pw = self.cfg.pooling
        th, tw = self.token_grid
        grid = feats.reshape(b * v, g, g, c)
        if th * ph != g or tw * pw != g:
            grid = F.pad(grid, (0, 0, 0, tw * pw - g, 0, th * ph - g))
        blocks = grid.reshape(b * v, th, ph, tw, pw, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ph * pw, c)
        pooled = self.connector.image_pooling_2d(blocks)  # (N*th*tw, C_v)
        tokens = self.connector.image_projector(pooled.reshape(b * v, th * tw, -1))
        return tokens.reshape(b, v, th * tw, -1)

    def _image_token_ids(self) -> list[int]:
        th, tw = self.token_grid
        row = [self.im_patch_id] * tw + ([self.im_col_id] if self.cfg.use_col_tokens else [])
        return [self.im_start_id, *(row * th), self.im_end_id]

    def prompt_ids(self, prompt: str, num_views: int) -> Tensor:
        """Token ids of one prompt with ``num_views`` images: [BOS] + (images at their placeholders, or first) + text."""
        chunks = prompt.split(IMAGE_PROMPT)
        n_placeholders = len(chunks) - 1
        if n_placeholders not in (0, num_views):
            raise ValueError(
                f"molmo: the prompt has {n_placeholders} {IMAGE_PROMPT} placeholders for {num_views} views; "
                f"put one per view or none (views first)"
            )
        if n_placeholders == 0:
            chunks = [""] * num_views + [prompt]
        image_ids = self._image_token_ids()
        ids = [self.bos_id]
        for i, chunk in enumerate(chunks):
            if chunk:
                ids += self.tokenizer(chunk, add_special_tokens=False).input_ids
            if i < num_views:
                ids += image_ids
        return torch.tensor(ids, dtype=torch.long)

    def prepare_inputs(
        self,
        images: Tensor,
        prompts: list[str],
        extras: dict[str, Tensor] | None = None,
        view_mask: Tensor | None = None,
        extra_valid: dict[str, Tensor] | None = None,
        **_,
    ) -> VLMInputs:
        """Build the prefix for ``images`` (B, V, 3, H, W) in [0, 1] and ``prompts``.

        Args:
            extras: name -> (B, n, D) embeddings appended after each prompt (e.g. query tokens).
            view_mask: (B, V) bool; False hides a view's image tokens from attention (absent camera).
        """
        b, v = images.shape[:2]
        if len(prompts) != b:
            raise ValueError(f"got {len(prompts)} prompts for a batch of {b} images")
        feats = self.encode_images(images)  # (B, V, N_img, D)
        embed = self.language_model.embed_tokens
        device = embed.weight.device
        token_embeds, slots, per_sample = [], [], []
        for i, prompt in enumerate(prompts):
            ids = self.prompt_ids(prompt, v).to(device)
            emb = embed(ids)
            slot = (ids == self.im_patch_id).nonzero().squeeze(-1)
            token_embeds.append(emb)
            slots.append(slot)
            # Molmo adds the pooled features to the <im_patch> embeddings (x[image_input_idx] += features)
            if self.cfg.view_slots == "released_a1" and v > 1:
                n_img = self.num_image_tokens
                first = emb[slot[:n_img]] + feats[i, -1].to(emb.dtype)  # the last write wins
                per_sample.append(torch.cat([first, emb[slot[n_img:]]]))
            else:
                per_sample.append(emb[slot] + feats[i].reshape(-1, feats.shape[-1]).to(emb.dtype))
        inputs = assemble_prefix(token_embeds, per_sample, slots, extras=extras, extra_valid=extra_valid)
        if view_mask is not None:
            hidden = ~view_mask.to(device).bool().repeat_interleave(
                self.num_image_tokens, dim=1
            )  # (B, V*N_img)
            rows = torch.arange(b, device=device).unsqueeze(1).expand_as(hidden)
            inputs.attention_mask[rows[hidden], inputs.image_positions[hidden]] = False
        return inputs


def _extend_embeddings(lm: nn.Module, extra: int) -> None:
    """Append ``extra`` rows (N(0, 0.02), Molmo's new_embedding init) to the language model's input embedding."""
    old = lm.embed_tokens
    rows, dim = old.weight.shape
    new = nn.Embedding(rows + extra, dim, device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        if old.weight.device.type != "meta":
            new.weight[:rows] = old.weight
            new.weight[rows:].normal_(0.0, 0.02)
    lm.embed_tokens = new
    lm.config.vocab_size = rows + extra
