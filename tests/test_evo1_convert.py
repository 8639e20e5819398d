"""Official Evo-1 checkpoints -> LeRobot ``evo1``: the InternVL renaming, and a synthetic official step directory
at tiny size that converts, loads with ``--policy.path`` semantics, and whose action head gives the velocity field
of an independent re-implementation of the official head (written here from the Evo-1 paper, Sec. 3.2, and the
official ``Evo_1/model/action_head/flow_matching.py``).

The official conventions a converted checkpoint carries (``processors/evo1.py``) are checked against references
written here from the official code's behaviour (MINT-SJTU/Evo-1 ``evo1-flash``): ``InternVL3Embedder`` pads every
prompt to 1024 tokens and masks padding / absent cameras only inside the language model, the head attends to all
of it unmasked, ``return_cls_only`` is position 0, and ``Evo1_server.Normalizer`` clamps the normalised state."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys

import pytest
import torch
from lerobot_vla_tools.convert.evo1 import ConversionError, convert, main, select_stats
from lerobot_vla_tools.testing import build_tiny_internvl, run_cli
from torch import nn

from lerobot_vla_plugins.convert.internvl import (
    UnsupportedInternVLKeyError,
    convert_remote_internvl_state_dict,
)

# Tiny official EvoConfig (Evo_1/config.py fields; the README recipe's horizon/24-D padding/dropout, tiny widths).
HORIZON, ACTION_PAD, STATE_PAD, EMBED, HIDDEN, HEADS, BLOCKS = 8, 24, 24, 64, 128, 4, 2
LM_LAYERS_KEPT = 2  # the official embedder keeps the first 14 of 24 Qwen2.5 layers; here 2 of the tiny 4
OFFICIAL_CONFIG = {
    "device": "cuda",
    "run_name": "tiny",
    "vlm_name": "OpenGVLab/InternVL3-1B",
    "action_head": "flowmatching",
    "return_cls_only": False,
    "image_size": 32,
    "horizon": HORIZON,
    "action_horizon": None,
    "per_action_dim": ACTION_PAD,
    "state_dim": STATE_PAD,
    "num_layers": BLOCKS,
    "dropout": 0.2,
    "embed_dim": EMBED,
    "hidden_dim": HIDDEN,
    "state_hidden_dim": HIDDEN,
    "num_heads": HEADS,
    "num_categories": 1,
    "num_inference_timesteps": 50,
    "lr": 1e-5,
    "batch_size": 16,
    "max_steps": 65000,
    "warmup_steps": 1000,
    "finetune_vlm": True,
    "finetune_action_head": True,
}
STATE_MIN, STATE_MAX = [-0.5, 0.0, 0.1, -1.0], [0.5, 1.0, 0.3, 1.0]
ACTION_MIN, ACTION_MAX = [-1.0, -1.0, -1.0, -1.0], [1.0, 1.0, 1.0, 1.0]


# ---------------------------------------------------------------------------------------------- the remote layout


def native_to_remote(native: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Write a native ``InternVLModel`` state dict in the remote-code ``InternVLChatModel`` layout.

    Names from OpenGVLab/InternVL ``modeling_intern_vit.py`` (``embeddings.class_embedding``, ``patch_embedding``,
    ``position_embedding``; blocks ``attn.qkv`` (rows q, k, v), ``attn.proj``, ``ls1/ls2``, ``norm1/norm2``,
    ``mlp.fc1/fc2``), ``mlp1.{0,1,3}`` and ``language_model.model.*`` (Qwen2ForCausalLM).
    """
    remote: dict[str, torch.Tensor] = {}
    block_names = {
        "attention.projection_layer": "attn.proj",
        "lambda_1": "ls1",
        "lambda_2": "ls2",
        "layernorm_before": "norm1",
        "layernorm_after": "norm2",
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
    }
    layers = sorted({int(k.split(".")[3]) for k in native if k.startswith("vision_tower.encoder.layer.")})
    for i in layers:
        pre = f"vision_tower.encoder.layer.{i}."
        for leaf in ("weight", "bias"):
            parts = [native.get(f"{pre}attention.{p}_proj.{leaf}") for p in "qkv"]
            if all(p is not None for p in parts):
                remote[f"vision_model.encoder.layers.{i}.attn.qkv.{leaf}"] = torch.cat(parts, dim=0)
        for key, value in native.items():
            if (
                key.startswith(pre)
                and ".attention.q_proj" not in key
                and ".attention.k_proj" not in key
                and ".attention.v_proj" not in key
            ):
                rest = key.removeprefix(pre)
                module, _, leaf = rest.rpartition(".") if rest.count(".") else (rest, "", "")
                new = block_names[module] + (f".{leaf}" if leaf else "")
                remote[f"vision_model.encoder.layers.{i}.{new}"] = value
    emb = {
        "cls_token": "class_embedding",
        "position_embeddings": "position_embedding",
        "patch_embeddings.projection.weight": "patch_embedding.weight",
        "patch_embeddings.projection.bias": "patch_embedding.bias",
    }
    for new, old in emb.items():
        remote[f"vision_model.embeddings.{old}"] = native[f"vision_tower.embeddings.{new}"]
    for new, old in (("layer_norm", "0"), ("linear_1", "1"), ("linear_2", "3")):
        for leaf in ("weight", "bias"):
            remote[f"mlp1.{old}.{leaf}"] = native[f"multi_modal_projector.{new}.{leaf}"]
    for key, value in native.items():
        if key.startswith("language_model."):
            remote["language_model.model." + key.removeprefix("language_model.")] = value
    fused = sum(1 for k in native if any(f".attention.{p}_proj." in k for p in "qkv"))
    assert len(remote) == len(native) - fused * 2 // 3, (
        "every native tensor has a remote twin (q, k, v -> qkv)"
    )
    return remote


@pytest.fixture(scope="module")
def native_internvl(tmp_path_factory):
    """A tiny native InternVL (the kit's sizes) with qkv biases, as InternVL3-1B-hf has (attention_bias=True)."""
    from transformers import AutoConfig, InternVLForConditionalGeneration

    path = build_tiny_internvl(tmp_path_factory.mktemp("internvl"))
    config = AutoConfig.from_pretrained(path)
    config.vision_config.attention_bias = True
    torch.manual_seed(1)
    InternVLForConditionalGeneration(config).eval().save_pretrained(path)
    return path


def _internvl_inputs(model, path, generator):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    n = model.config.image_seq_length
    ids = tok(["Image-1: <img>" + "<IMG_CONTEXT>" * n + "</img>\npress the button"], return_tensors="pt")
    size = model.config.vision_config.image_size[0]
    return {
        "input_ids": ids["input_ids"],
        "attention_mask": ids["attention_mask"],
        "pixel_values": torch.randn(1, 3, size, size, generator=generator),
    }


def test_remote_internvl_weights_convert_back_to_the_same_model(native_internvl):
    from transformers import AutoModel

    original = AutoModel.from_pretrained(native_internvl).eval()
    remote = native_to_remote(original.state_dict())
    remote["language_model.lm_head.weight"] = torch.zeros(
        3, 3
    )  # the chat model's text head: no place in InternVLModel
    native, dropped = convert_remote_internvl_state_dict(remote)
    assert dropped == ["language_model.lm_head.weight"]
    torch.manual_seed(123)
    rebuilt = AutoModel.from_config(original.config).eval()
    rebuilt.load_state_dict(native, strict=True)
    inputs = _internvl_inputs(original, native_internvl, torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = original(**inputs, output_hidden_states=True).hidden_states
        b = rebuilt(**inputs, output_hidden_states=True).hidden_states
    assert len(a) == len(b) == original.config.text_config.num_hidden_layers + 1
    for ha, hb in zip(a, b, strict=True):
        torch.testing.assert_close(ha, hb, rtol=0, atol=0)


def test_fused_qkv_rows_are_split_query_key_value():
    dim = 4
    qkv = torch.arange(3 * dim * dim, dtype=torch.float32).reshape(3 * dim, dim)
    native, _ = convert_remote_internvl_state_dict({"vision_model.encoder.layers.0.attn.qkv.weight": qkv})
    for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
        assert native[f"vision_tower.encoder.layer.0.attention.{name}.weight"].equal(
            qkv[i * dim : (i + 1) * dim]
        )


def test_an_internlm2_checkpoint_is_refused_by_name():
    with pytest.raises(UnsupportedInternVLKeyError, match="layers.0.attention.wqkv.weight: InternLM2-based"):
        convert_remote_internvl_state_dict(
            {"language_model.model.layers.0.attention.wqkv.weight": torch.zeros(1)}
        )


# ---------------------------------------------------------------------------------------------- reference head


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """Transformer sinusoidal table (sin on even, cos on odd channels), ``(1, length, dim)``."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return table[None]


class _Linear(nn.Module):
    """``CategorySpecificLinear`` with one category: the weight lives at ``<name>.linear``."""

    def __init__(self, i, o):
        super().__init__()
        self.linear = nn.Linear(i, o)

    def forward(self, x):
        return self.linear(x)


class _MLP(nn.Module):
    def __init__(self, i, h, o):
        super().__init__()
        self.fc1, self.fc2 = _Linear(i, h), _Linear(h, o)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class _CrossAttention(nn.Module):
    """Multi-head attention with the packed ``in_proj`` parameters of the official ``nn.MultiheadAttention``."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.randn(3 * dim, dim) / math.sqrt(dim))
        self.in_proj_bias = nn.Parameter(torch.randn(3 * dim) * 0.02)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x, ctx):
        b, t, d = x.shape
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3)
        split = lambda y: y.view(b, -1, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(x @ wq.T + bq), split(ctx @ wk.T + bk), split(ctx @ wv.T + bv)
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads), dim=-1)
        return self.out_proj((w @ v).transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.attn = _CrossAttention(dim, heads)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, a, ctx, t_emb):
        x = a + self.attn(self.norm1(a), ctx)  # cross-attention only: the action tokens query z_t ++ s_t
        return x + self.ff(self.norm2(x) + t_emb[:, None])  # the flow time enters additively before the FFN


class _ActionEncoder(nn.Module):
    def __init__(self, a, dim, horizon):
        super().__init__()
        self.W1, self.W2, self.W3 = _Linear(a, dim), _Linear(dim, dim), _Linear(dim, dim)
        self.pos_encoding = nn.Module()
        self.pos_encoding.register_buffer("pe", sinusoid_table(horizon, dim))

    def forward(self, actions):
        h = torch.relu(self.W1(actions)) + self.pos_encoding.pe
        return self.W3(torch.relu(self.W2(h)))


class OfficialHead(nn.Module):
    """Evo-1's cross-modulated DiT, parameter names as ``FlowmatchingActionHead`` of the official code.

    velocity(z, s, A_tau, tau): the integration module concatenates the fused tokens z_t with the encoded state
    s_t as keys/values (Sec. 3.2.3), the noisy chunk A_tau is encoded per step (+ sinusoidal position), L blocks of
    cross-attention + FFN, a final LayerNorm, the chunk flattened and pooled to one vector, an MLP to H*A.
    """

    def __init__(self):
        super().__init__()
        self.time_pos_enc = nn.Module()
        self.time_pos_enc.register_buffer("pe", sinusoid_table(1000, EMBED))
        self.transformer_blocks = nn.ModuleList(_Block(EMBED, HEADS) for _ in range(BLOCKS))
        self.norm_out = nn.LayerNorm(EMBED)
        self.seq_pool_proj = nn.Linear(HORIZON * EMBED, EMBED)
        self.mlp_head = _MLP(EMBED, HIDDEN, HORIZON * ACTION_PAD)
        self.state_encoder = _MLP(STATE_PAD, HIDDEN, EMBED)
        self.action_encoder = _ActionEncoder(ACTION_PAD, EMBED, HORIZON)
        for p in self.parameters():  # LayerNorms away from identity, so that a swapped weight would show
            if p.dim() == 1:
                nn.init.normal_(p, mean=float(p.detach().mean()), std=0.1)

    def velocity(self, z, state, a_tau, time_index):
        """v_theta(A_tau, z_t, s_t) of eq. (4): ``(B, H*A)``; ``time_index`` = int(tau * 999) per sample."""
        ctx = torch.cat([z, self.state_encoder(state)[:, None]], dim=1)
        x = self.action_encoder(a_tau)
        t_emb = self.time_pos_enc.pe[0, time_index]
        for block in self.transformer_blocks:
            x = block(x, ctx, t_emb)
        return self.mlp_head(self.seq_pool_proj(self.norm_out(x).flatten(1)))

    def sample(self, z, state, mask, steps):
        """Euler integration from uniform noise at tau=0 to the action chunk at tau=1 (official get_action)."""
        b = z.shape[0]
        a = (torch.rand(b, HORIZON * ACTION_PAD) * 2 - 1).view(b, HORIZON, ACTION_PAD) * mask
        for i in range(steps):
            idx = torch.full((b,), min(int(i / steps * 999), 999))
            a = a + (1.0 / steps) * self.velocity(z, state, a * mask, idx).view(b, HORIZON, ACTION_PAD) * mask
        return (a * mask).flatten(1)


# ---------------------------------------------------------------------------------------------- the step directory


def write_step_dir(path, native_internvl, norm_stats, config=OFFICIAL_CONFIG):
    """A synthetic official DeepSpeed step directory: EVO1 state dict under "module", config.json, norm_stats.json."""
    from transformers import AutoModel

    vlm = native_to_remote(AutoModel.from_pretrained(native_internvl).state_dict())
    vlm = {
        k: v
        for k, v in vlm.items()
        if not any(f"layers.{i}." in k and k.startswith("language_model") for i in range(LM_LAYERS_KEPT, 99))
    }
    torch.manual_seed(7)
    head = OfficialHead()
    module = {f"embedder.model.{k}": v for k, v in vlm.items()}
    module.update({f"action_head.{k}": v for k, v in head.state_dict().items()})
    path.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"module": module, "global_steps": 65000, "dp_world_size": 8, "ds_version": "0.16.4"},
        path / "mp_rank_00_model_states.pt",
    )
    (path / "config.json").write_text(json.dumps(config))
    (path / "norm_stats.json").write_text(json.dumps(norm_stats))
    return head, module


NEW_LAYOUT_STATS = {
    "metaworld_arm": {
        "metaworld_mt50": {
            "observation.state": {
                "min": STATE_MIN,
                "max": STATE_MAX,
                "mean": [0.0] * 4,
                "std": [1.0] * 4,
                "q01": STATE_MIN,
                "q99": STATE_MAX,
            },
            "action": {
                "min": ACTION_MIN,
                "max": ACTION_MAX,
                "mean": [0.0] * 4,
                "std": [1.0] * 4,
                "q01": ACTION_MIN,
                "q99": ACTION_MAX,
            },
        },
    },
}
OLD_LAYOUT_STATS = {
    "metaworld_robot": {
        "observation.state": {"min": STATE_MIN, "max": STATE_MAX},
        "action": {"min": ACTION_MIN, "max": ACTION_MAX},
    }
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory, native_internvl):
    root = tmp_path_factory.mktemp("evo1_official")
    head, module = write_step_dir(root / "step_65000", native_internvl, NEW_LAYOUT_STATS)
    out = convert(
        root / "step_65000", root / "lerobot", features="metaworld", vlm_model_name=str(native_internvl)
    )
    return out, head, module


@pytest.fixture(scope="module")
def loaded(converted):
    from lerobot.policies.evo1.modeling_evo1 import Evo1Policy

    return Evo1Policy.from_pretrained(converted[0]).eval()


def test_the_converted_directory_has_what_policy_path_loads(converted):
    out = converted[0]
    for name in (
        "config.json",
        "model.safetensors",
        "policy_preprocessor.json",
        "policy_postprocessor.json",
        "evo1_conversion.json",
    ):
        assert (out / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["type"] == "evo1"
    assert (cfg["chunk_size"], cfg["max_action_dim"], cfg["max_state_dim"]) == (
        HORIZON,
        ACTION_PAD,
        STATE_PAD,
    )
    assert (cfg["embed_dim"], cfg["num_layers"], cfg["num_heads"], cfg["dropout"]) == (
        EMBED,
        BLOCKS,
        HEADS,
        0.2,
    )
    assert cfg["vlm_num_layers"] == LM_LAYERS_KEPT
    assert cfg["num_inference_timesteps"] == 50  # what the official server runs
    assert cfg["normalization_mapping"]["ACTION"] == "MIN_MAX"  # official default normalization: bounds
    assert not list(out.parent.glob(".lerobot.partial-*")), "no temporary directory is left behind"


def test_every_official_tensor_lands_in_the_loaded_policy(converted, loaded):
    _, _, module = converted
    policy_sd = loaded.state_dict()
    for key, value in module.items():
        if key.startswith("action_head."):
            assert policy_sd[f"model.{key}"].equal(value), key
    qkv = module["embedder.model.vision_model.encoder.layers.1.attn.qkv.bias"]
    assert policy_sd["model.embedder.model.vision_tower.encoder.layer.1.attention.k_proj.bias"].equal(
        qkv.chunk(3)[1]
    )
    assert policy_sd["model.embedder.model.language_model.layers.1.mlp.up_proj.weight"].equal(
        module["embedder.model.language_model.model.layers.1.mlp.up_proj.weight"]
    )
    assert len(loaded.model.embedder.model.language_model.layers) == LM_LAYERS_KEPT


def test_the_action_head_gives_the_official_velocity_field(converted, loaded):
    """Same context, same noise and time draws: the converted head and the reference agree at random tau ..."""
    _, reference, _ = converted
    head = loaded.model.action_head
    b = 3
    g = torch.Generator().manual_seed(3)
    z = torch.randn(b, 20, EMBED, generator=g)
    state = torch.randn(b, STATE_PAD, generator=g)
    actions = torch.rand(b, HORIZON, ACTION_PAD, generator=g) * 2 - 1
    mask = torch.ones(b, HORIZON, ACTION_PAD)
    torch.manual_seed(11)
    with torch.no_grad():
        v_lerobot, noise = head(z, state=state, actions_gt=actions, action_mask=mask)
    torch.manual_seed(11)
    tau = torch.distributions.Beta(2, 2).sample((b,)).clamp(0.02, 0.98)  # eq. (3): tau ~ Beta, clamped
    eps = torch.rand_like(actions) * 2 - 1  # official noise: uniform in [-1, 1]
    a_tau = (1 - tau.view(b, 1, 1)) * eps + tau.view(b, 1, 1) * actions  # eq. (3)
    with torch.no_grad():
        v_ref = reference.velocity(z, state, a_tau, (tau * 999).long())
    torch.testing.assert_close(noise, eps, rtol=0, atol=0)
    torch.testing.assert_close(v_lerobot, v_ref, rtol=1e-5, atol=1e-5)


def test_the_converted_head_integrates_to_the_official_action_chunk(converted, loaded):
    """... and along the whole Euler path (50 steps as the official server), with a partial action mask."""
    _, reference, _ = converted
    b = 2
    g = torch.Generator().manual_seed(4)
    z, state = torch.randn(b, 20, EMBED, generator=g), torch.randn(b, STATE_PAD, generator=g)
    mask = torch.zeros(b, HORIZON, ACTION_PAD)
    mask[..., :4] = 1  # Meta-World: 4 of the 24 padded action dims
    torch.manual_seed(5)
    with torch.no_grad():
        chunk = loaded.model.action_head.get_action(z, state=state, action_mask=mask[:, 0])
    torch.manual_seed(5)
    with torch.no_grad():
        ref = reference.sample(z, state, mask, steps=50)
    torch.testing.assert_close(chunk, ref, rtol=1e-4, atol=1e-4)
    assert chunk.view(b, HORIZON, ACTION_PAD)[..., 4:].abs().max() == 0


def test_the_normalizer_state_is_padded_as_lerobots_evo1_expects(converted):
    """The official bounds normalisation 2(x-min)/(max-min)-1 on the real dims, 0 on the 20 padded ones."""
    from lerobot.policies.evo1.configuration_evo1 import Evo1Config
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.processor import NormalizerProcessorStep

    out = converted[0]
    cfg = Evo1Config.from_pretrained(out)
    pre, post = make_pre_post_processors(
        cfg, pretrained_path=str(out), preprocessor_overrides={"device_processor": {"device": "cpu"}}
    )
    (norm,) = [s for s in pre.steps if isinstance(s, NormalizerProcessorStep)]
    torch.testing.assert_close(norm.stats["observation.state"]["min"], torch.tensor(STATE_MIN + [-1.0] * 20))
    torch.testing.assert_close(norm.stats["observation.state"]["max"], torch.tensor(STATE_MAX + [1.0] * 20))
    state = torch.tensor([[0.0, 0.5, 0.2, 1.0]])
    batch = pre(
        {"observation.image": torch.rand(1, 3, 480, 480), "observation.state": state, "task": ["press"]}
    )
    lo, hi = torch.tensor(STATE_MIN), torch.tensor(STATE_MAX)
    expected = 2 * (state[0] - lo) / (hi - lo) - 1
    torch.testing.assert_close(batch["observation.state"][0, :4], expected)
    assert batch["observation.state"][0, 4:].abs().max() == 0
    action = post(torch.zeros(1, ACTION_PAD))  # normalised 0 -> the middle of [min, max], cropped to 4 dims
    torch.testing.assert_close(action, ((torch.tensor(ACTION_MIN) + torch.tensor(ACTION_MAX)) / 2)[None])


def test_the_checkpoint_runs_through_lerobots_eval_path(converted):
    """As lerobot-eval does it: make_policy with the Meta-World env config, processors with the eval overrides, a
    real MetaworldEnv observation through preprocess_observation and the env processors, select_action -> (1, 4)."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.envs.configs import MetaworldEnv
    from lerobot.envs.factory import make_env, make_env_pre_post_processors
    from lerobot.envs.utils import preprocess_observation
    from lerobot.policies.factory import make_policy, make_pre_post_processors
    from lerobot_vla_tools.testing import TEST_TASK

    out = str(converted[0])
    cfg = PreTrainedConfig.from_pretrained(out)
    cfg.pretrained_path, cfg.device = out, "cpu"
    env_cfg = MetaworldEnv(task=TEST_TASK)
    policy = make_policy(cfg, env_cfg=env_cfg)
    pre, post = make_pre_post_processors(
        cfg, pretrained_path=out, preprocessor_overrides={"device_processor": {"device": "cpu"}}
    )
    env_pre, env_post = make_env_pre_post_processors(env_cfg=env_cfg, policy_cfg=cfg)
    envs = make_env(env_cfg, n_envs=1)
    env = next(iter(next(iter(envs.values())).values()))
    try:
        raw, _ = env.reset(seed=0)
        observation = preprocess_observation(raw)
        observation["task"] = list(env.call("task_description"))
        with torch.inference_mode():
            action = post(policy.select_action(pre(env_pre(observation))))
        action = env_post({"action": action})["action"]
        env.step(action.numpy())
    finally:
        env.close()
    assert action.shape == (1, 4) and torch.isfinite(action).all()


def test_old_and_new_norm_stats_layouts_select_one_embodiment():
    stats, label = select_stats(NEW_LAYOUT_STATS)
    assert label == "metaworld_arm/metaworld_mt50" and stats["observation.state"]["min"] == STATE_MIN
    stats, label = select_stats(OLD_LAYOUT_STATS)
    assert label == "metaworld_robot" and stats["action"]["max"] == ACTION_MAX
    two = {
        "franka": {
            "libero_10": {"observation.state": {}, "action": {}},
            "libero_goal": {"observation.state": {}, "action": {}},
        }
    }
    with pytest.raises(
        ConversionError, match=r"several entries \['libero_10', 'libero_goal'\]; pass --dataset_key"
    ):
        select_stats(two)
    with pytest.raises(
        ConversionError, match="--arm_key='aloha' is not in norm_stats.json; choose one of \\['franka'\\]"
    ):
        select_stats(two, arm_key="aloha")


def test_the_command_converts_an_old_layout_checkpoint(tmp_path, native_internvl):
    write_step_dir(tmp_path / "step", native_internvl, OLD_LAYOUT_STATS)
    proc = run_cli(
        "lerobot-vla-evo1-convert",
        f"--checkpoint_dir={tmp_path / 'step'}",
        f"--output_dir={tmp_path / 'out'}",
        "--cameras=observation.images.front",
        f"--vlm_model_name={native_internvl}",
        "--n_action_steps=4",
    )
    assert f"--policy.path={tmp_path / 'out'}" in proc.stdout
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert list(cfg["input_features"]) == ["observation.images.front", "observation.state"]
    assert cfg["n_action_steps"] == 4


def test_bad_inputs_are_refused_with_the_fix_and_nothing_is_written(tmp_path, native_internvl):
    with pytest.raises(
        ConversionError, match="missing mp_rank_00_model_states.pt, config.json, norm_stats.json"
    ):
        convert(tmp_path / "empty", tmp_path / "out", features="metaworld")
    bad_stats = {
        "franka": {
            "libero": {
                "observation.state": {"min": [0.0] * 8, "max": [1.0] * 8},
                "action": {"min": [0.0] * 7, "max": [1.0] * 7},
            }
        }
    }
    write_step_dir(tmp_path / "libero", native_internvl, bad_stats)
    with pytest.raises(ConversionError, match="state 4 / action 4 dims but norm_stats.json has 8 / 7"):
        convert(
            tmp_path / "libero", tmp_path / "out", features="metaworld", vlm_model_name=str(native_internvl)
        )
    write_step_dir(
        tmp_path / "mismatch", native_internvl, NEW_LAYOUT_STATS, config={**OFFICIAL_CONFIG, "horizon": 50}
    )
    with pytest.raises(ConversionError, match="config.json says chunk_size=50 but the weights have 8"):
        convert(
            tmp_path / "mismatch", tmp_path / "out", features="metaworld", vlm_model_name=str(native_internvl)
        )
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.timeout(
    3600
)  # a full episode with the official 1024-token context (about 1 s per query on 2 cores)
def test_lerobot_eval_runs_a_converted_checkpoint_in_metaworld(converted, tmp_path):
    from lerobot_vla_tools.testing import TEST_TASK

    out = tmp_path / "eval"
    run_cli(
        "lerobot-eval",
        f"--policy.path={converted[0]}",
        "--env.type=metaworld",
        f"--env.task={TEST_TASK}",
        "--eval.n_episodes=1",
        "--eval.batch_size=1",
        "--eval.use_async_envs=false",
        "--policy.device=cpu",
        f"--output_dir={out}",
        timeout=3600,
    )
    info = json.loads((out / "eval_info.json").read_text())
    assert info["overall"]["n_episodes"] == 1 and 0.0 <= info["overall"]["pc_success"] <= 100.0


def test_a_paper_size_official_key_set_converts_to_lerobots_077b_evo1():
    """InternVL3-1B (remote layout, 14 of 24 language layers kept) + the official head, on the meta device: every
    converted tensor has the name and shape LeRobot's paper-size evo1 expects (no weights involved)."""
    from lerobot.policies.evo1.configuration_evo1 import Evo1Config
    from lerobot.policies.evo1.flow_matching import FlowmatchingActionHead
    from lerobot_vla_tools.convert.evo1 import check_against_policy, convert_state_dict
    from lerobot_vla_tools.testing.weightless import weightless_pretrained
    from transformers import AutoModel

    from lerobot_vla_plugins.features import metaworld_policy_features

    with weightless_pretrained("meta"), torch.device("meta"):
        native = AutoModel.from_pretrained("OpenGVLab/InternVL3-1B-hf").state_dict()
        head = FlowmatchingActionHead(
            action_dim=50 * 24, horizon=50, per_action_dim=24, state_dim=24, state_hidden_dim=1024
        )
    remote = {
        k: v
        for k, v in native_to_remote(native).items()
        if not any(f"model.layers.{i}." in k for i in range(14, 24))
    }
    official = {f"embedder.model.{k}": v for k, v in remote.items()}
    official.update({f"action_head.{k}": v for k, v in head.state_dict().items()})
    state_dict, layers = convert_state_dict(official)
    assert layers == 14
    inputs, outputs = metaworld_policy_features()
    config = Evo1Config(
        input_features=inputs, output_features=outputs
    )  # paper defaults: InternVL3-1B-hf, 14 layers
    check_against_policy(state_dict, config)  # raises on any missing, unexpected or mis-shaped tensor
    params = sum(v.numel() for k, v in state_dict.items() if not k.endswith(".pe"))
    assert params == pytest.approx(0.77e9, rel=0.01)


# ---------------------------------------------------------------------------------------------- official conventions


def official_context_tokens(vlm_path, views: list[torch.Tensor], prompts: list[str]) -> torch.Tensor:
    """What the official ``InternVL3Embedder`` hands the head, written from its code (``evo1-flash``):

    prompt ``"Image-i: <img>" + <IMG_CONTEXT> * n + "</img>\\n"`` for the 3 view slots + ``instruction.strip()``,
    tokenised with ``padding='max_length', truncation=True, max_length=1024``; the attention mask of the language model
    is the tokenizer's with 0 on the image tokens of absent views (zero images); the output is the final-norm hidden
    state of every position, ``(B, 1024, D)`` (``lm_head`` is Identity). ``views``: present cameras, each ``(B, 3, H, W)``
    in [0, 1] at the model's resolution; the language model is truncated to ``LM_LAYERS_KEPT`` layers.
    """
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(vlm_path).eval()
    model.language_model.layers = model.language_model.layers[:LM_LAYERS_KEPT]
    tok = AutoTokenizer.from_pretrained(vlm_path)
    n, slots = model.config.image_seq_length, 3
    text = [
        "".join(f"Image-{i + 1}: <img>" + "<IMG_CONTEXT>" * n + "</img>\n" for i in range(slots)) + p.strip()
        for p in prompts
    ]
    enc = tok(text, padding="max_length", truncation=True, max_length=1024, return_tensors="pt")
    mask = enc["attention_mask"].clone()
    for b in range(len(prompts)):
        image_positions = (enc["input_ids"][b] == tok.convert_tokens_to_ids("<IMG_CONTEXT>")).nonzero()[:, 0]
        mask[b, image_positions[len(views) * n :]] = 0  # the absent views' tokens
    b, _, h, w = views[0].shape
    images = torch.stack([*views, *[torch.zeros(b, 3, h, w)] * (slots - len(views))], dim=1)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    pixels = ((images - mean.view(1, 1, 3, 1, 1)) / std.view(1, 1, 3, 1, 1)).flatten(0, 1)
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=mask, pixel_values=pixels)
    return out.last_hidden_state


def official_state(state: torch.Tensor) -> torch.Tensor:
    """``Evo1_server.Normalizer.normalize_state`` (bounds): ``clamp(2 (x - min) / (max - min + 1e-8) - 1, -1, 1)``,
    zero-padded to 24. ``(B, 4)`` -> ``(B, 24)``."""
    lo, hi = torch.tensor(STATE_MIN), torch.tensor(STATE_MAX)
    normed = torch.clamp(2 * (state - lo) / (hi - lo + 1e-8) - 1, -1.0, 1.0)
    return torch.nn.functional.pad(normed, (0, STATE_PAD - state.shape[-1]))


def _camera_frames(b: int, seed: int) -> torch.Tensor:
    """``(b, 3, 32, 32)`` frames at the tiny model's resolution, as a uint8 camera gives them (k / 255)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, 32, 32), generator=g).float() / 255


def _pipelines(path):
    from lerobot.policies.evo1.configuration_evo1 import Evo1Config
    from lerobot.policies.factory import make_pre_post_processors

    return make_pre_post_processors(
        Evo1Config.from_pretrained(path),
        pretrained_path=str(path),
        preprocessor_overrides={"device_processor": {"device": "cpu"}},
    )


def _head_inputs(policy):
    """Record what the action head is called with: ``[(fused_tokens, context_mask), ...]``."""
    seen = []
    head = policy.model.action_head
    original = head.get_action

    def spy(fused_tokens, *args, **kwargs):
        seen.append((fused_tokens.detach().clone(), kwargs.get("context_mask")))
        return original(fused_tokens, *args, **kwargs)

    head.get_action = spy
    return seen


# State row 2 lies outside [min, max]: the official server clamps its normalised value to [-1, 1].
STATES = torch.tensor([[0.0, 0.5, 0.2, 1.0], [0.9, -0.3, 0.5, 3.0]])
PROMPTS = ["press the button", "  open the drawer, then push the plate to the goal  "]


def test_the_official_context_gives_the_reference_action_chunk(converted, loaded, native_internvl):
    """Prompts padded to 1024 tokens, padding and the 2 absent cameras masked only inside the language model, the
    head attending to all 1024 + 1 tokens: the converted policy's action chunk is the reference's, for a batch of
    two prompts of different lengths and an out-of-range state."""
    pre, _ = _pipelines(converted[0])
    images = _camera_frames(2, seed=8)
    batch = pre({"observation.image": images, "observation.state": STATES, "task": PROMPTS})
    assert batch["evo1_context"] == "official"
    seen = _head_inputs(loaded)
    torch.manual_seed(21)
    with torch.no_grad():
        chunk = loaded.predict_action_chunk(batch)  # (B, T, 24), normalised
    ((tokens, context_mask),) = seen
    assert tokens.shape == (2, 1024, EMBED) and context_mask is None

    z = official_context_tokens(native_internvl, [images], PROMPTS)
    mask = torch.zeros(2, HORIZON, ACTION_PAD)
    mask[..., :4] = 1
    torch.manual_seed(21)
    with torch.no_grad():
        ref = converted[1].sample(z, official_state(STATES), mask, steps=50)
    torch.testing.assert_close(tokens, z, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunk.flatten(1), ref, rtol=1e-4, atol=1e-4)


def test_the_normalised_state_is_clamped_as_the_official_server_does(converted):
    pre, _ = _pipelines(converted[0])
    batch = pre({"observation.image": _camera_frames(2, 0), "observation.state": STATES, "task": PROMPTS})
    torch.testing.assert_close(batch["observation.state"], official_state(STATES), rtol=0, atol=1e-6)
    assert batch["observation.state"][1, 3] == 1.0  # 2 (3 - -1) / 2 - 1 = 3 unclamped


def test_a_fresh_process_loading_like_lerobot_eval_gets_the_official_context(converted):
    """No import of this package: LeRobot imports the pipeline's steps by their class path, and building the context
    step installs the policy hook (the policy is built first, as in lerobot-eval)."""
    script = f"""
import json, sys, torch
from lerobot.configs.policies import PreTrainedConfig
from lerobot.policies.evo1.modeling_evo1 import Evo1Policy
from lerobot.policies.factory import make_pre_post_processors
path = {str(converted[0])!r}
cfg = PreTrainedConfig.from_pretrained(path)
cfg.device = "cpu"
policy = Evo1Policy.from_pretrained(path, config=cfg).eval()
imported_before = "lerobot_vla_plugins" in sys.modules
pre, post = make_pre_post_processors(cfg, pretrained_path=path,
                                     preprocessor_overrides={{"device_processor": {{"device": "cpu"}}}})
seen = []
get_action = policy.model.action_head.get_action
def spy(tokens, *a, **k):
    seen.append((tokens.shape[1], k.get("context_mask") is None))
    return get_action(tokens, *a, **k)
policy.model.action_head.get_action = spy
obs = {{"observation.image": torch.rand(1, 3, 32, 32), "observation.state": torch.zeros(1, 4), "task": ["push"]}}
action = post(policy.select_action(pre(obs)))
print(json.dumps({{"imported_before": imported_before, "seen": seen, "action": list(action.shape)}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"imported_before": False, "seen": [[1024, True]], "action": [1, 4]}


def _convert_tiny(tmp_path, native_internvl, name="out", config=OFFICIAL_CONFIG, **options):
    """A synthetic official step directory (once per ``tmp_path``) converted with ``options`` into ``tmp_path/name``."""
    if not (tmp_path / "step").exists():
        write_step_dir(tmp_path / "step", native_internvl, NEW_LAYOUT_STATS, config=config)
    return convert(
        tmp_path / "step",
        tmp_path / name,
        features="metaworld",
        vlm_model_name=str(native_internvl),
        **options,
    )


def _saved_steps(out) -> list[str]:
    """The preprocessor steps of a converted directory, by class path or registry name."""
    steps = json.loads((out / "policy_preprocessor.json").read_text())["steps"]
    return [s.get("class", s.get("registry_name")) for s in steps]


def test_the_lerobot_context_keeps_lerobots_padding_and_masks(tmp_path, native_internvl):
    out = _convert_tiny(tmp_path, native_internvl, context="lerobot")
    steps = _saved_steps(out)
    assert "lerobot_vla_plugins.processors.evo1.Evo1BoundsClampStep" in steps  # converted checkpoints clamp
    assert not any("Evo1OfficialContextStep" in s for s in steps)
    pre, _ = _pipelines(out)
    batch = pre({"observation.image": _camera_frames(2, 0), "observation.state": STATES, "task": PROMPTS})
    assert "evo1_context" not in batch
    provenance = json.loads((out / "evo1_conversion.json").read_text())
    assert provenance["context"] == "lerobot"
    assert any(d.startswith("context:") for d in provenance["deviations_from_official"])


def test_mean_std_normalisation_is_not_clamped(tmp_path, native_internvl):
    """The official code clamps after the bounds normalisations only (its 'normal' mode returns before the clamp)."""
    out = _convert_tiny(tmp_path, native_internvl, normalization_type="normal")
    assert not any("Evo1BoundsClampStep" in s for s in _saved_steps(out))


def test_return_cls_only_conditions_on_position_0_of_the_padded_prompt(tmp_path, native_internvl, caplog):
    """Official ``return_cls_only``: ``fused_hidden[:, 0, :]``; LeRobot's pools the last valid token instead, so the
    converter keeps position 0 with the official context and warns with LeRobot's."""
    from lerobot.policies.evo1.modeling_evo1 import Evo1Policy

    cls_config = {**OFFICIAL_CONFIG, "return_cls_only": True}
    out = _convert_tiny(tmp_path, native_internvl, config=cls_config)
    policy = Evo1Policy.from_pretrained(out).eval()
    pre, _ = _pipelines(out)
    images = _camera_frames(2, seed=3)
    seen = _head_inputs(policy)
    with torch.no_grad():
        policy.predict_action_chunk(
            pre({"observation.image": images, "observation.state": STATES, "task": PROMPTS})
        )
    ((tokens, _),) = seen
    torch.testing.assert_close(tokens, official_context_tokens(native_internvl, [images], PROMPTS)[:, 0])

    with caplog.at_level(logging.WARNING):
        lerobot = _convert_tiny(tmp_path, native_internvl, "lerobot", config=cls_config, context="lerobot")
    assert "return_cls_only=true: LeRobot's evo1 pools the last valid token" in caplog.text
    deviations = json.loads((lerobot / "evo1_conversion.json").read_text())["deviations_from_official"]
    assert any(d.startswith("return_cls_only") for d in deviations)


def _poison(step_dir, key: str, value: float) -> None:
    """Overwrite one released tensor of a step directory with ``value`` (a broken checkpoint)."""
    path = step_dir / "mp_rank_00_model_states.pt"
    states = torch.load(path, weights_only=True)
    states["module"][key] = torch.full_like(states["module"][key], value)
    torch.save(states, path)


def test_the_command_refuses_exploding_weights_unless_allowed(tmp_path, native_internvl, caplog, capsys):
    """A released LIBERO checkpoint holds vision weights near 1e37 (NaN actions): refused with the tensor's name and
    the way out, nothing written; ``--allow_bad_weights=true`` converts with a warning. The per-module summary is
    printed either way."""
    write_step_dir(tmp_path / "step", native_internvl, NEW_LAYOUT_STATS)
    bad = "embedder.model.vision_model.encoder.layers.0.mlp.fc1.weight"
    _poison(tmp_path / "step", bad, 1e37)
    args = [
        f"--checkpoint_dir={tmp_path / 'step'}",
        f"--output_dir={tmp_path / 'out'}",
        "--features=metaworld",
        f"--vlm_model_name={native_internvl}",
    ]
    with caplog.at_level(logging.INFO):
        assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{bad}: max |w| 1e+37" in err and "--allow_bad_weights=true" in err
    assert not (tmp_path / "out").exists()
    summary = caplog.text
    assert "embedder.model.vision_model" in summary and "action_head.transformer_blocks" in summary
    assert "BAD" in summary

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main([*args, "--allow_bad_weights=true"]) == 0
    assert f"{bad}: max |w| 1e+37" in caplog.text
    assert (tmp_path / "out" / "model.safetensors").is_file()
