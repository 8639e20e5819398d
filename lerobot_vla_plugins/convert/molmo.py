"""Convert released Molmo weights (HF ``allenai/Molmo-7B-D-0924``, or the VLM part of an A1 ``model.pt``) into the
native-parts layout of ``lerobot_vla_plugins.backbones.molmo.MolmoBackbone``.

Key layout of the released code (A1 ``a1/model.py``, ``a1/image_vit.py``; HF Molmo = ``"model." +`` these keys,
see A1's ``a1/hf_molmo.py``, which loads the HF state dict with ``k[6:]``):

=====================================================================  ==============================================
Molmo                                                                  ours
=====================================================================  ==============================================
vision_backbone.image_vit.class_embedding / positional_embedding       vision.vision_model.embeddings.class_embedding /
                                                                       position_embedding.weight
vision_backbone.image_vit.patch_embedding.weight (D, 14*14*3)          ...patch_embedding.weight (D, 3, 14, 14): the
                                                                       linear patch vector is (row, col, channel)
vision_backbone.image_vit.pre_ln                                       vision_model.pre_layrnorm
...resblocks.i.attention.{wq,wk,wv,wo}                                 encoder.layers.i.self_attn.{q,k,v,out}_proj
...resblocks.i.feed_forward.{w1,w2}; attention_norm; ffn_norm          mlp.{fc1,fc2}; layer_norm1; layer_norm2
vision_backbone.{pad_embed, image_pooling_2d.*, image_projector.*}     connector.{same names}
transformer.wte.embedding ++ wte.new_embedding                         language_model.embed_tokens.weight (rows cat)
transformer.blocks.i.att_proj (fused, [q | k | v] rows, with bias)     layers.i.self_attn.{q,k,v}_proj
transformer.blocks.i.attn_out                                          layers.i.self_attn.o_proj
transformer.blocks.i.ff_proj (fused SwiGLU: first half x, second gate) layers.i.mlp.up_proj / gate_proj
transformer.blocks.i.ff_out; attn_norm; ff_norm                        mlp.down_proj; input_layernorm;
                                                                       post_attention_layernorm
transformer.ln_f                                                       norm
transformer.ff_out (LM head)                                           dropped (a VLA backbone has no LM head)
=====================================================================  ==============================================

Sizes are read from the tensors; head counts (not visible in the shapes) from the checkpoint's config or the
arguments. Usage: ``python -m lerobot_vla_plugins.convert.molmo --input=<Molmo-7B-D dir> --output=<dir>``
(or ``lerobot-a1-convert --source=molmo ...``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lerobot_vla_plugins.errors import ConversionError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class MolmoParts:
    """The converted pieces: state dicts and configs of the vision tower, connector and language model."""

    vision_state: dict[str, Tensor]
    vision_config: dict
    connector_state: dict[str, Tensor]
    language_state: dict[str, Tensor]
    language_config: dict
    molmo_config: dict = field(default_factory=dict)


def _take(sd: dict[str, Tensor], key: str) -> Tensor:
    if key not in sd:
        raise ConversionError(f"Molmo checkpoint: missing tensor {key!r}; is this a Molmo / A1 checkpoint?")
    return sd[key]


def convert_molmo_state_dict(
    sd: dict[str, Tensor],
    *,
    num_heads: int,
    vision_heads: int | None = None,
    vision_feature_layers: tuple[int, ...] = (-2, -9),
    rope_theta: float = 1e6,
    rms_norm_eps: float = 1e-6,
    max_position_embeddings: int = 4096,
    prefix: str = "model.",
) -> MolmoParts:
    """Map a Molmo state dict (keys as in the module table, each under ``prefix``) to our parts.

    Args:
        num_heads: attention heads of the language model (Qwen2-7B: 28); KV heads follow from the shapes.
        vision_heads: ViT heads (default: hidden / 64, ViT-L/14 has 16).
        vision_feature_layers: ViT layers whose features Molmo concatenates (Molmo-7B-D and A1: -2, -9).
    """
    p = prefix
    v = f"{p}vision_backbone."
    t = f"{p}transformer."
    if any(k.startswith(f"{t}block_groups.") for k in sd):
        raise ConversionError(
            "Molmo checkpoint with block groups is not supported; save it with block_group_size=1"
        )
    if any(re.match(rf"{re.escape(t)}blocks\.\d+\.(q_norm|k_norm)\.", k) for k in sd):
        raise ConversionError(
            "Molmo checkpoint with attention q/k norms (OLMo-style) cannot become a Qwen2 decoder"
        )

    # ---------------- vision tower
    cls_emb = _take(sd, v + "image_vit.class_embedding")
    dv = cls_emb.shape[0]
    patch_w = _take(sd, v + "image_vit.patch_embedding.weight")
    ps = int(round(math.sqrt(patch_w.shape[1] / 3)))
    pos = _take(sd, v + "image_vit.positional_embedding")
    grid = int(round(math.sqrt(pos.shape[0] - 1)))
    n_vit = 1 + max(
        int(m.group(1))
        for k in sd
        if (m := re.match(rf"{re.escape(v)}image_vit\.transformer\.resblocks\.(\d+)\.", k))
    )
    mlp_dim = _take(sd, v + "image_vit.transformer.resblocks.0.feed_forward.w1.weight").shape[0]
    vision_heads = vision_heads or max(1, dv // 64)
    vs: dict[str, Tensor] = {
        "vision_model.embeddings.class_embedding": cls_emb,
        "vision_model.embeddings.position_embedding.weight": pos,
        # linear over a (row, col, channel)-flattened patch == conv weight (out, channel, row, col)
        "vision_model.embeddings.patch_embedding.weight": patch_w.reshape(dv, ps, ps, 3)
        .permute(0, 3, 1, 2)
        .contiguous(),
        "vision_model.pre_layrnorm.weight": _take(sd, v + "image_vit.pre_ln.weight"),
        "vision_model.pre_layrnorm.bias": _take(sd, v + "image_vit.pre_ln.bias"),
        # Molmo has no post-LN (it reads the block outputs); identity values keep the CLIP module complete
        "vision_model.post_layernorm.weight": torch.ones(dv, dtype=cls_emb.dtype),
        "vision_model.post_layernorm.bias": torch.zeros(dv, dtype=cls_emb.dtype),
    }
    names = {
        "attention.wq": "self_attn.q_proj",
        "attention.wk": "self_attn.k_proj",
        "attention.wv": "self_attn.v_proj",
        "attention.wo": "self_attn.out_proj",
        "feed_forward.w1": "mlp.fc1",
        "feed_forward.w2": "mlp.fc2",
        "attention_norm": "layer_norm1",
        "ffn_norm": "layer_norm2",
    }
    for i in range(n_vit):
        src = f"{v}image_vit.transformer.resblocks.{i}."
        for a, b in names.items():
            for wb in ("weight", "bias"):
                vs[f"vision_model.encoder.layers.{i}.{b}.{wb}"] = _take(sd, f"{src}{a}.{wb}")
    vision_config = {
        "hidden_size": dv,
        "intermediate_size": mlp_dim,
        "num_hidden_layers": n_vit,
        "num_attention_heads": vision_heads,
        "image_size": grid * ps,
        "patch_size": ps,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
    }

    # ---------------- connector
    cs = {"pad_embed": _take(sd, v + "pad_embed")}
    for w in ("wq", "wk", "wv", "wo"):
        for wb in ("weight", "bias"):
            cs[f"image_pooling_2d.{w}.{wb}"] = _take(sd, f"{v}image_pooling_2d.{w}.{wb}")
    for w in ("w1", "w2", "w3"):
        cs[f"image_projector.{w}.weight"] = _take(sd, f"{v}image_projector.{w}.weight")
    projector_hidden = cs["image_projector.w1.weight"].shape[0]

    # ---------------- language model
    emb = _take(sd, t + "wte.embedding")
    new_emb = sd.get(t + "wte.new_embedding", emb.new_zeros(0, emb.shape[1]))
    d = emb.shape[1]
    n_layers = 1 + max(int(m.group(1)) for k in sd if (m := re.match(rf"{re.escape(t)}blocks\.(\d+)\.", k)))
    if d % num_heads:
        raise ConversionError(f"num_heads={num_heads} does not divide the hidden size {d}")
    hd = d // num_heads
    fused = _take(sd, t + "blocks.0.att_proj.weight").shape[0]
    kv = (fused - d) // 2
    ff = _take(sd, t + "blocks.0.ff_proj.weight").shape[0] // 2
    ls: dict[str, Tensor] = {
        "embed_tokens.weight": torch.cat([emb, new_emb], dim=0),
        "norm.weight": _take(sd, t + "ln_f.weight"),
    }
    for i in range(n_layers):
        src, dst = f"{t}blocks.{i}.", f"layers.{i}."
        w = _take(sd, src + "att_proj.weight")
        bias = sd.get(src + "att_proj.bias", w.new_zeros(w.shape[0]))
        for name, (a, b) in zip(("q", "k", "v"), ((0, d), (d, d + kv), (d + kv, d + 2 * kv)), strict=True):
            ls[f"{dst}self_attn.{name}_proj.weight"] = w[a:b]
            ls[f"{dst}self_attn.{name}_proj.bias"] = bias[a:b]
        ls[f"{dst}self_attn.o_proj.weight"] = _take(sd, src + "attn_out.weight")
        ff_w = _take(sd, src + "ff_proj.weight")
        ls[f"{dst}mlp.up_proj.weight"] = ff_w[:ff]  # SwiGLU: x, gate = chunk(2); silu(gate) * x
        ls[f"{dst}mlp.gate_proj.weight"] = ff_w[ff:]
        ls[f"{dst}mlp.down_proj.weight"] = _take(sd, src + "ff_out.weight")
        ls[f"{dst}input_layernorm.weight"] = _take(sd, src + "attn_norm.weight")
        ls[f"{dst}post_attention_layernorm.weight"] = _take(sd, src + "ff_norm.weight")
    language_config = {
        "hidden_size": d,
        "intermediate_size": ff,
        "num_hidden_layers": n_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": kv // hd,
        "vocab_size": emb.shape[0] + new_emb.shape[0],
        "rope_theta": rope_theta,
        "rms_norm_eps": rms_norm_eps,
        "max_position_embeddings": max_position_embeddings,
        "tie_word_embeddings": False,
    }
    molmo_config = {
        "vision_feature_layers": list(vision_feature_layers),
        "vision_num_layers": n_vit,
        "pooling": [2, 2],
        "projector_hidden_size": projector_hidden,
        "image_size": grid * ps,
        "base_vocab_size": emb.shape[0],
        "additional_vocab_size": new_emb.shape[0],
        "use_col_tokens": True,
    }
    return MolmoParts(vs, vision_config, cs, ls, language_config, molmo_config)


def load_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a checkpoint: a directory of ``*.safetensors`` shards, one ``.safetensors`` file, or a torch
    file (``model.pt``, loaded with ``weights_only=True``)."""
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    if path.is_dir():
        shards = sorted(path.glob("*.safetensors"))
        if not shards:
            pts = [p for p in (path / "model.pt", path / "pytorch_model.bin") if p.is_file()]
            if not pts:
                raise FileNotFoundError(f"no *.safetensors, model.pt or pytorch_model.bin in {path}")
            return load_state_dict(pts[0])
        sd: dict[str, Tensor] = {}
        for shard in shards:
            sd.update(load_file(str(shard)))
        return sd
    if path.suffix == ".safetensors":
        return load_file(str(path))
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise ConversionError(f"{path} does not hold a state dict")
    return obj


def save_molmo_backbone(
    parts: MolmoParts,
    tokenizer: PreTrainedTokenizerBase,
    output: str | Path,
    dtype: torch.dtype | None = None,
    overwrite: bool = False,
) -> Path:
    """Build the native modules from ``parts`` (strict loads: every tensor must find its place) and write the
    ``MolmoBackbone`` directory atomically."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, Qwen2Config, Qwen2Model

    from lerobot_vla_plugins.atomic import atomic_directory
    from lerobot_vla_plugins.backbones.molmo import MolmoBackbone, MolmoConfig, MolmoConnector

    mc = MolmoConfig(**parts.molmo_config)
    with torch.device("meta"):
        vision = CLIPVisionModel(CLIPVisionConfig(**parts.vision_config))
        lm = Qwen2Model(Qwen2Config(**parts.language_config))
    vision.load_state_dict(parts.vision_state, strict=True, assign=True)
    lm.load_state_dict(parts.language_state, strict=True, assign=True)
    # non-persistent buffers (position ids, rotary frequencies) are rebuilt on the CPU
    vision.vision_model.embeddings.register_buffer(
        "position_ids",
        torch.arange(vision.vision_model.embeddings.num_positions).expand((1, -1)),
        persistent=False,
    )
    lm.rotary_emb = type(lm.rotary_emb)(config=lm.config)
    connector = MolmoConnector(
        mc, vision.config.hidden_size, vision.config.num_attention_heads, lm.config.hidden_size
    )
    connector.load_state_dict(parts.connector_state, strict=True)
    if dtype is not None:
        vision.to(dtype), lm.to(dtype), connector.to(dtype)
    backbone = MolmoBackbone(vision, connector, lm, tokenizer, mc)
    with atomic_directory(output, overwrite=overwrite, what="Molmo backbone") as tmp:
        backbone.save_pretrained(tmp)
    return Path(output).expanduser().absolute()


def convert_molmo(
    input_dir: str | Path,
    output: str | Path,
    tokenizer: str | None = None,
    num_heads: int | None = None,
    vision_heads: int | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
    allow_bad_weights: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Convert an HF Molmo checkpoint directory (``allenai/Molmo-7B-D-0924`` downloaded locally) to our layout.

    Args:
        tokenizer: tokenizer directory or hub id (default: the checkpoint directory itself, which ships one).
        num_heads: language-model heads (default: ``num_attention_heads`` of the checkpoint's config.json).
        allow_bad_weights: convert even non-finite / exploding tensors (``convert.checks``; only warn).
        log: where the per-module weight summary goes (default: the checks module's logger).
    """
    from transformers import AutoTokenizer

    from lerobot_vla_plugins.convert.checks import check_weights

    input_dir = Path(input_dir).expanduser()
    cfg_path = input_dir / "config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    num_heads = num_heads or cfg.get("num_attention_heads")
    if not num_heads:
        raise ConversionError(f"{cfg_path} has no num_attention_heads; pass --num_heads")
    sd = load_state_dict(input_dir)
    check_weights(sd, source=str(input_dir), allow_bad=allow_bad_weights, log=log)
    parts = convert_molmo_state_dict(
        sd,
        num_heads=int(num_heads),
        vision_heads=vision_heads,
        rope_theta=float(cfg.get("rope_theta", 1e6)),
        rms_norm_eps=float(cfg.get("layer_norm_eps", 1e-6)),
        max_position_embeddings=int(cfg.get("max_position_embeddings", 4096)),
        prefix="model.",
    )
    tok = AutoTokenizer.from_pretrained(tokenizer or str(input_dir))
    return save_molmo_backbone(parts, tok, output, getattr(torch, dtype) if dtype else None, overwrite)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    from lerobot_vla_plugins.convert.checks import add_allow_bad_weights_argument

    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--input",
        required=True,
        help="local directory of allenai/Molmo-7B-D-0924 (config.json + safetensors)",
    )
    ap.add_argument("--output", required=True, help="directory to write the MolmoBackbone to")
    ap.add_argument("--tokenizer", default=None, help="tokenizer dir or id (default: the input directory)")
    ap.add_argument("--num_heads", type=int, default=None)
    ap.add_argument("--vision_heads", type=int, default=None)
    ap.add_argument("--dtype", default=None, choices=[None, "float32", "bfloat16", "float16"])
    ap.add_argument("--overwrite", action="store_true")
    add_allow_bad_weights_argument(ap)
    args = ap.parse_args(argv)
    try:
        out = convert_molmo(
            args.input,
            args.output,
            args.tokenizer,
            args.num_heads,
            args.vision_heads,
            args.dtype,
            args.overwrite,
            allow_bad_weights=args.allow_bad_weights,
            log=print,
        )
    except (ConversionError, FileNotFoundError, FileExistsError) as err:
        print(f"lerobot_vla_plugins.convert.molmo: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
