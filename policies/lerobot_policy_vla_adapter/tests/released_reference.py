"""A test oracle for the released VLA-Adapter: tiny checkpoints written in the released layouts (timm-keyed
towers, HF Qwen2ForCausalLM, L1 action head with the released parameter names) and the released inference
computed from them with timm, transformers and numpy directly, re-implementing what the official code
(OpenHelix-Team/VLA-Adapter 838a36d) does:

* ``prismatic/extern/hf/modeling_prismatic.py``: second-to-last tower blocks, fused projector, patches after
  the first prompt token, 64 ActionQuery + stop token, the conditions one position early;
* ``prismatic/models/action_heads.py``: both Bridge Attention blocks; the Pro block's RoPE as the bf16 module the
  release runs (``action_head.to(torch.bfloat16)`` casts ``inv_freq``, so positions and angles are bf16);
* ``experiments/robot/openvla_utils.py``: the 0.9-area centre crop (``tf.image.crop_and_resize``, bilinear,
  back to uint8), ``normalize_proprio`` and ``_unnormalize_actions`` (BOUNDS_Q99, mask);
* ``experiments/robot/robot_utils.py`` / ``run_libero_eval.py``: the gripper sent to LIBERO.

It was checked against the official modules (built at tiny size, outside this repository; docs/parity.md).
Nothing here imports the code under test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

DINO_ID = "vit_large_patch14_reg4_dinov2.lvd142m"
SIGLIP_ID = "vit_so400m_patch14_siglip_224"
IMAGE = 28  # 2 x 2 patches of 14 px
D = 64
NUM_QUERIES = 64
DINO_MEAN, DINO_STD = [0.484375, 0.455078125, 0.40625], [0.228515625, 0.2236328125, 0.224609375]


def _randomise(module: nn.Module, std: float = 0.2) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, std)


def tiny_towers(seed: int = 0):
    """timm DINOv2-reg4 and SigLIP-So400m architectures (same model ids, tiny sizes), random weights."""
    import timm

    torch.manual_seed(seed)
    dino = timm.create_model(
        DINO_ID.split(".")[0],
        pretrained=False,
        num_classes=0,
        img_size=IMAGE,
        embed_dim=32,
        depth=3,
        num_heads=16,
    )
    siglip = timm.create_model(
        SIGLIP_ID, pretrained=False, num_classes=0, img_size=IMAGE, embed_dim=48, depth=3, num_heads=16
    )
    _randomise(dino)
    _randomise(siglip)
    return dino.eval(), siglip.eval()


class ReleasedProjector(nn.Module):
    def __init__(self, vision_dim: int, llm_dim: int):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = (
            nn.Linear(vision_dim, 4 * vision_dim),
            nn.Linear(4 * vision_dim, llm_dim),
            nn.Linear(llm_dim, llm_dim),
        )

    def forward(self, x):
        return self.fc3(F.gelu(self.fc2(F.gelu(self.fc1(x)))))


class ReleasedBlock(nn.Module):
    """MLPResNetBlock (pro=False) / MLPResNetBlock_Pro (pro=True) with the released parameter names.
    ``rope_dtype``: dtype of the Pro block's ``inv_freq`` buffer (bf16 in the released, bf16-cast module)."""

    def __init__(self, dim: int, pro: bool, rope_dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.pro, self.h, self.hd, self.rope_dtype = pro, 8, dim // 8, rope_dtype
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU())
        self.q_proj, self.o_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        if pro:
            for n in ("k_self", "v_self", "k_adapter", "v_adapter", "k_task", "v_task"):
                setattr(self, n, nn.Linear(dim, dim))
            self.film_gen = nn.Sequential(nn.Linear(dim, 2 * dim))
        else:
            self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.gating_factor = nn.Parameter(torch.zeros(1))

    def _rope(self, n, dtype):
        inv = (1.0 / (10000 ** (torch.arange(0, self.hd, 2).float() / self.hd))).to(self.rope_dtype)
        f = torch.einsum("i,j->ij", torch.arange(n, dtype=inv.dtype), inv)
        e = torch.cat([f, f], -1)
        return e.cos().to(dtype), e.sin().to(dtype)

    @staticmethod
    def _rot(x, cos, sin):
        rh = torch.stack((-x[..., 1::2], x[..., ::2]), dim=-1).reshape_as(x)
        return x * cos + rh * sin

    def forward(self, x, h_a, h_t, p):
        b, t, c = x.shape
        heads = lambda z: z.view(b, z.shape[1], self.h, self.hd).transpose(1, 2)  # noqa: E731
        g = torch.tanh(self.gating_factor)
        ha = torch.cat([h_a, p], dim=1)
        if self.pro:
            q, ks, vs = heads(self.q_proj(x)), heads(self.k_self(x)), heads(self.v_self(x))
            ka, va, kt, vt = (
                heads(self.k_adapter(ha)),
                heads(self.v_adapter(ha)),
                heads(self.k_task(h_t)),
                heads(self.v_task(h_t)),
            )
            cos, sin = self._rope(t, x.dtype)
            q, ks = self._rot(q, cos, sin), self._rot(ks, cos, sin)
            ka = self._rot(ka, *self._rope(ka.shape[2], x.dtype))
            kt = self._rot(kt, *self._rope(kt.shape[2], x.dtype))
            scores = torch.cat(
                [q @ ks.transpose(-2, -1), q @ ka.transpose(-2, -1), (q @ kt.transpose(-2, -1)) * g], -1
            )
            v = torch.cat([vs, va, vt], 2)
        else:
            q = heads(self.q_proj(x))
            ks, ka, kt = heads(self.k_proj(x)), heads(self.k_proj(ha)), heads(self.k_proj(h_t))
            vs, va, vt = heads(self.v_proj(x)), heads(self.v_proj(ha)), heads(self.v_proj(h_t))
            scores = torch.cat(
                [q @ ks.transpose(-2, -1), q @ ka.transpose(-2, -1), (q @ kt.transpose(-2, -1)) * g], -1
            )
            v = torch.cat([vs, va, vt], 2)
        w = torch.softmax(scores / math.sqrt(self.hd), -1)
        out = self.o_proj((w @ v).transpose(1, 2).reshape(b, t, c))
        return self.ffn(out + x)


class ReleasedMLPResNet(nn.Module):
    def __init__(self, dim: int, action_dim: int, num_blocks: int, pro: bool):
        super().__init__()
        self.layer_norm1, self.fc1 = nn.LayerNorm(dim * action_dim), nn.Linear(dim * action_dim, dim)
        self.mlp_resnet_blocks = nn.ModuleList(ReleasedBlock(dim, pro) for _ in range(num_blocks))
        self.layer_norm2, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, action_dim)

    def set_rope_dtype(self, dtype: torch.dtype) -> None:
        for blk in self.mlp_resnet_blocks:
            blk.rope_dtype = dtype

    def forward(self, x, h_a, h_t, p):
        x = torch.relu(self.fc1(self.layer_norm1(x)))
        for i, blk in enumerate(self.mlp_resnet_blocks):
            x = blk(x, h_a=h_a[:, i + 1], h_t=h_t[:, i + 1], p=p)
        return self.fc2(self.layer_norm2(x))


class ReleasedHead(nn.Module):
    """L1RegressionActionHead: ``model`` = MLPResNet with 24 blocks in the release (here: one per tiny LLM layer)."""

    def __init__(self, dim: int, action_dim: int, num_blocks: int, pro: bool, chunk: int = 8):
        super().__init__()
        self.model = ReleasedMLPResNet(dim, action_dim, num_blocks, pro)
        self.dim, self.action_dim, self.chunk = dim, action_dim, chunk

    def forward(self, hidden, proprio_token, num_task_tokens):
        b = hidden.shape[0]
        h_t, h_a = hidden[:, :, :num_task_tokens], hidden[:, :, num_task_tokens:]
        x = torch.zeros(b, self.action_dim * self.chunk, self.dim).reshape(b, self.chunk, -1)
        return self.model(x, h_a=h_a, h_t=h_t, p=proprio_token)


class ReleasedProprio(nn.Module):
    def __init__(self, state_dim: int, dim: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(state_dim, dim), nn.Linear(dim, dim)

    def forward(self, s):
        return self.fc2(F.gelu(self.fc1(s)))


def released_prompt(task: str) -> str:
    return (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\nWhat action should the robot take to {task.lower()}?<|im_end|>\n<|im_start|>assistant\n"
    )


class ReleasedVLA:
    """The pieces of a released VLA-Adapter checkpoint, and its forward."""

    def __init__(self, pro: bool, seed: int = 0, state_dim: int = 8, action_dim: int = 7):
        from lerobot_vla_tools.testing.tokenizers import train_byte_level_bpe
        from transformers import Qwen2Config, Qwen2ForCausalLM

        self.dino, self.siglip = tiny_towers(seed)
        torch.manual_seed(seed + 1)
        self.tokenizer = train_byte_level_bpe(vocab_size=400)
        self.text_config = {
            "model_type": "qwen2",
            "hidden_size": D,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 128,
            "vocab_size": len(self.tokenizer),
            "max_position_embeddings": 512,
            "tie_word_embeddings": True,
            "rope_theta": 1e6,
            "rms_norm_eps": 1e-6,
        }
        cfg = dict(self.text_config)
        cfg.pop("model_type")
        self.llm = Qwen2ForCausalLM(Qwen2Config(**cfg)).eval()
        self.projector = ReleasedProjector(32 + 48, D)
        self.action_queries = nn.Embedding(NUM_QUERIES, D)
        self.head = ReleasedHead(D, action_dim, 3, pro)
        self.proprio = ReleasedProprio(state_dim, D)
        for m in (self.projector, self.action_queries, self.head, self.proprio):
            _randomise(m, 0.1)
        with torch.no_grad():  # trained gates are not 0
            for blk in self.head.model.mlp_resnet_blocks:
                blk.gating_factor.fill_(0.7)
        self.state_dim, self.action_dim = state_dim, action_dim

    # --- released layouts
    def timm_keys(self, module: nn.Module) -> dict:
        return {k.replace(".gamma", ".scale_factor"): v for k, v in module.state_dict().items()}

    def write_checkpoint(self, path: Path, stats: dict) -> Path:
        from safetensors.torch import save_file

        path.mkdir(parents=True, exist_ok=True)
        sd = {f"vision_backbone.featurizer.{k}": v for k, v in self.timm_keys(self.dino).items()}
        sd |= {f"vision_backbone.fused_featurizer.{k}": v for k, v in self.timm_keys(self.siglip).items()}
        sd |= {f"projector.{k}": v for k, v in self.projector.state_dict().items()}
        sd |= {f"language_model.{k}": v for k, v in self.llm.state_dict().items()}
        sd["action_queries.weight"] = self.action_queries.weight.data
        save_file({k: v.contiguous().clone() for k, v in sd.items()}, str(path / "model.safetensors"))
        (path / "config.json").write_text(
            json.dumps(
                {
                    "model_type": "openvla",
                    "arch_specifier": "no-align+fused-gelu-mlp",
                    "image_sizes": [IMAGE, IMAGE],
                    "timm_model_ids": [DINO_ID, SIGLIP_ID],
                    "use_fused_vision_backbone": True,
                    "text_config": self.text_config,
                }
            )
        )
        torch.save(
            {f"module.{k}": v for k, v in self.head.state_dict().items()},
            path / "action_head--150000_checkpoint.pt",
        )
        torch.save(
            {f"module.{k}": v for k, v in self.proprio.state_dict().items()},
            path / "proprio_projector--150000_checkpoint.pt",
        )
        (path / "dataset_statistics.json").write_text(json.dumps(stats))
        self.tokenizer.save_pretrained(path)
        return path

    def write_base_vlm(self, path: Path) -> Path:
        """Prismatic run directory: config.json + checkpoints/latest-checkpoint.pt (raw Prismatic key names)."""
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
        proj = {
            f"projector.{i}.{leaf}": v
            for i, name in ((0, "fc1"), (2, "fc2"), (4, "fc3"))
            for leaf, v in getattr(self.projector, name).state_dict().items()
        }
        model = {
            "projector": proj,
            "llm_backbone": {f"llm.{k}": v for k, v in self.llm.state_dict().items()},
            "vision_backbone": {
                **{f"dino_featurizer.{k}": v for k, v in self.dino.state_dict().items()},
                **{f"siglip_featurizer.{k}": v for k, v in self.siglip.state_dict().items()},
            },
        }
        torch.save({"model": model}, path / "checkpoints" / "latest-checkpoint.pt")
        (path / "config.json").write_text(
            json.dumps(
                {
                    "model": {
                        "vision_backbone_id": "dinosiglip-vit-so-224px",
                        "llm_backbone_id": "qwen25-0_5b-extra",
                    }
                }
            )
        )
        return path

    # --- released forward
    @torch.no_grad()
    def image_patches(self, views: torch.Tensor) -> torch.Tensor:
        """views (V, 3, H, W) in [0, 1] at the tower resolution -> projected patches (1, V*N, D)."""
        mean, std = torch.tensor(DINO_MEAN).view(1, 3, 1, 1), torch.tensor(DINO_STD).view(1, 3, 1, 1)
        out = []
        for img in views:
            x = img[None]
            d = self.dino.get_intermediate_layers((x - mean) / std, n={len(self.dino.blocks) - 2})[0]
            s = self.siglip.get_intermediate_layers((x - 0.5) / 0.5, n={len(self.siglip.blocks) - 2})[0]
            out.append(torch.cat([d, s], dim=2))
        return self.projector(torch.cat(out, dim=1))

    @torch.no_grad()
    def hidden_states(self, views: torch.Tensor, task: str) -> tuple[list[torch.Tensor], int, int]:
        ids = self.tokenizer(released_prompt(task), add_special_tokens=True).input_ids
        emb = self.llm.get_input_embeddings()
        tok = emb(torch.tensor([ids]))
        patches = self.image_patches(views)
        stop = emb(torch.tensor([[2]]))
        seq = torch.cat([tok[:, :1], patches, tok[:, 1:], self.action_queries.weight[None], stop], dim=1)
        out = self.llm(inputs_embeds=seq, output_hidden_states=True)
        return list(out.hidden_states), patches.shape[1], len(ids)

    @torch.no_grad()
    def normalized_actions(self, views: torch.Tensor, task: str, state: torch.Tensor) -> torch.Tensor:
        hs, n_patches, n_prompt = self.hidden_states(views, task)
        start = n_patches + n_prompt - 1  # NUM_PATCHES + NUM_PROMPT_TOKENS
        layers = torch.stack(
            [torch.cat([h[:, :n_patches], h[:, start : start + NUM_QUERIES]], dim=1) for h in hs], 1
        )
        return self.head(layers, self.proprio(state).unsqueeze(1), num_task_tokens=n_patches)


# --- the released evaluation around the model (experiments/robot/openvla_utils.py, robot_utils.py)
def center_crop_uint8(image: np.ndarray, crop_scale: float = 0.9) -> np.ndarray:
    """``center_crop_image``: (H, W, 3) uint8 -> (H, W, 3) uint8. ``tf.image.convert_image_dtype`` to [0, 1]
    (x * (1 / 255)), ``tf.image.crop_and_resize`` of the centred box with sides sqrt(crop_scale) back to (H, W)
    (TF's float32 kernel: output i samples y1 (H - 1) + i (y2 - y1) (H - 1) / (H - 1); lerp along x between
    floor and ceil, then along y), clip, back to uint8 with TF's float -> uint8 cast (x * 255.5, truncated)."""
    f32 = np.float32
    h, w = image.shape[:2]
    x = image.astype(f32) * f32(1 / 255)
    side = np.clip(np.sqrt(f32(crop_scale)), f32(0), f32(1))
    y1 = (f32(1) - side) / f32(2)
    y2 = y1 + side

    def points(n: int):
        scale = (y2 - y1) * f32(n - 1) / f32(n - 1)
        pos = y1 * f32(n - 1) + np.arange(n, dtype=f32) * scale
        lo = np.floor(pos)
        return lo.astype(int), np.minimum(np.ceil(pos).astype(int), n - 1), (pos - lo).astype(f32)

    top, bottom, dy = points(h)
    left, right, dx = points(w)
    dx = dx[None, :, None]
    upper = x[top][:, left] + (x[top][:, right] - x[top][:, left]) * dx
    lower = x[bottom][:, left] + (x[bottom][:, right] - x[bottom][:, left]) * dx
    out = np.clip(upper + (lower - upper) * dy[:, None, None], f32(0), f32(1))
    return (out * f32(255.5)).astype(np.uint8)


def normalize_proprio(proprio: np.ndarray, stats: dict) -> np.ndarray:
    """BOUNDS_Q99 state normalisation with the mask (``normalize_proprio``)."""
    mask = np.asarray(stats.get("mask", np.ones_like(stats["q01"], dtype=bool)))
    hi, lo = np.asarray(stats["q99"]), np.asarray(stats["q01"])
    return np.clip(np.where(mask, 2 * (proprio - lo) / (hi - lo + 1e-8) - 1, proprio), -1.0, 1.0)


def unnormalize_actions(actions: np.ndarray, stats: dict) -> np.ndarray:
    """``_unnormalize_actions``: BOUNDS_Q99 on the masked dims, the others (the gripper) as predicted."""
    mask = np.asarray(stats.get("mask", np.ones_like(stats["q01"], dtype=bool)))
    hi, lo = np.asarray(stats["q99"]), np.asarray(stats["q01"])
    return np.where(mask, 0.5 * (actions + 1) * (hi - lo + 1e-8) + lo, actions)


def libero_env_action(action: np.ndarray) -> np.ndarray:
    """``process_action`` of run_libero_eval: gripper 2g - 1, sign, then flipped (-1 = open, +1 = close)."""
    out = action.copy()
    out[..., -1] = 2 * (out[..., -1] - 0.0) / (1.0 - 0.0) - 1
    out[..., -1] = np.sign(out[..., -1])
    out[..., -1] *= -1.0
    return out


def calvin_env_action(action: np.ndarray) -> np.ndarray:
    """CALVIN evaluation: ``action[:, -1] = 1 - action[:, -1]``, then evaluate_calvin's ``process_action``
    (2g - 1, sign with 0 -> +1, flipped)."""
    out = action.copy()
    out[..., -1] = 1 - out[..., -1]
    g = 2 * out[..., -1] - 1
    sign = np.sign(g)
    sign[sign == 0.0] = 1
    out[..., -1] = -sign
    return out


@torch.no_grad()
def libero_env_actions(
    vla: ReleasedVLA, views_uint8: list[np.ndarray], task: str, state: np.ndarray, stats: dict
) -> np.ndarray:
    """The released LIBERO evaluation of one observation (views at the towers' resolution, raw 8-D state) ->
    the (8, 7) actions sent to the environment."""
    views = torch.stack(
        [torch.from_numpy(center_crop_uint8(v)).permute(2, 0, 1).float() / 255.0 for v in views_uint8]
    )
    proprio = torch.from_numpy(normalize_proprio(state, stats["proprio"])).float()[None]
    normalized = vla.normalized_actions(views, task, proprio)[0].numpy()
    return libero_env_action(unnormalize_actions(normalized, stats["action"]))
