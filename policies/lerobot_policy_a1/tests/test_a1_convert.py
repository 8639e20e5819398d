"""Converting a released A1 checkpoint (model.pt + config.yaml + dataset_statistics.json, Molmo-codebase keys + the
released flow-matching head) into a LeRobot A1 checkpoint that acts as the released inference code.

Synthetic tiny checkpoints in the released layout stand in for the 8B files. Every reference below is written from
the released code's behaviour (ATeam-Research/A1 @ 2fcb07d): the flow-matching head's "2d_attn_mask" call
(``a1/vla/action_heads.py``), the collator's padding to ``data.sequence_length`` (``a1/data/collator.py``),
``normalize_proprio`` / ``_unnormalize_actions`` (``robot_experiments/libero/exit_vla_utils.py``) and the LIBERO
gripper handling (``robot_experiments/robot_utils.py``); the comparison with the real released code is in
docs/parity.md."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml
from lerobot_vla_tools.testing.molmo import TinyMolmoSpec, molmo_original_state_dict, tiny_molmo_tokenizer
from torch import nn

from lerobot_vla_plugins.errors import ConversionError
from lerobot_vla_plugins.heads.mlp_resnet import MLPResNet

SPEC = TinyMolmoSpec()
H, HEADS, INTER, A, S, T = 32, 2, 64, 32, 32, 4
SEQ_LEN = 64  # the released data.sequence_length every prompt is padded to (LIBERO: 600)


class ReleasedFlowMatchingHead(nn.Module):
    """The released ``FlowMatchingActionHead`` modules (a1/vla/action_heads.py): a Qwen2ForCausalLM without token
    embedding, state/action/time projections and an MLP-ResNet output."""

    def __init__(self):
        super().__init__()
        from transformers import Qwen2Config, Qwen2ForCausalLM

        cfg = Qwen2Config(
            hidden_size=H,
            num_hidden_layers=SPEC.text_layers,
            num_attention_heads=HEADS,
            intermediate_size=INTER,
            num_key_value_heads=SPEC.text_kv_heads,
            vocab_size=16,
        )
        self.qwen2 = Qwen2ForCausalLM(cfg)
        self.qwen2.model.embed_tokens = None
        self.state_proj = nn.Linear(S, H)
        self.action_in_proj = nn.Linear(A, H)
        self.action_time_in = nn.Linear(2 * H, H)
        self.action_time_out = nn.Linear(H, H)
        self.action_out = MLPResNet(num_blocks=2, input_dim=H, hidden_dim=H, output_dim=A)

    def velocity(self, kv, state, x_t, t, sequence_length: int):
        """``predict_vector_field_2d_attn_mask`` as the released eval calls it: the VLM cache covers the prompt
        padded with -1 to ``sequence_length`` (pad="to_max"), the 2-D mask is 1 on the valid prefix and on the
        suffix, and no position ids are passed, so Qwen2Model numbers the suffix from the cache length."""
        from transformers import DynamicCache

        n = kv[0][0].shape[-2]
        half = H // 2
        freqs = torch.exp(torch.arange(half) * -math.log(10000) / (half - 1))
        t_emb = torch.cat([(t[:, None] * freqs).sin(), (t[:, None] * freqs).cos()], -1)
        at = torch.cat([self.action_in_proj(x_t), t_emb.unsqueeze(1).expand(-1, x_t.shape[1], -1)], -1)
        tgt = torch.cat(
            [
                self.state_proj(state).unsqueeze(1),
                self.action_time_out(torch.nn.functional.silu(self.action_time_in(at))),
            ],
            1,
        )
        cache = DynamicCache()
        for i, (k, v) in enumerate(kv):
            pad = torch.zeros(*k.shape[:2], sequence_length - n, k.shape[-1])  # K/V of the -1 padding
            cache.update(torch.cat([k, pad], 2), torch.cat([v, pad], 2), i)
        mask = torch.cat(
            [torch.ones(1, n), torch.zeros(1, sequence_length - n), torch.ones(1, tgt.shape[1])], 1
        ).long()
        out = self.qwen2.model(inputs_embeds=tgt, attention_mask=mask, past_key_values=cache, use_cache=False)
        return self.action_out(out.last_hidden_state[:, -x_t.shape[1] :])


def _stats(state_dim: int, action_dim: int, rng: np.random.Generator) -> dict:
    """A ``dataset_statistics.json`` entry as the released RLDS pipeline writes it (gripper mask False)."""

    def part(dim, mask=None):
        lo, hi = rng.uniform(-1.0, -0.2, dim), rng.uniform(0.2, 1.0, dim)
        out = {"q01": lo.tolist(), "q99": hi.tolist(), "min": (lo - 0.1).tolist(), "max": (hi + 0.1).tolist()}
        out.update(mean=((lo + hi) / 2).tolist(), std=((hi - lo) / 4).tolist())
        if mask is not None:
            out["mask"] = mask
        return out

    return {
        "action": part(action_dim, [True] * (action_dim - 1) + [False]),
        "proprio": part(state_dim),
        "num_transitions": 10,
        "num_trajectories": 1,
    }


def _release(d, head, stats: dict, sequence_length: int | None = SEQ_LEN, sd_update=None):
    sd = molmo_original_state_dict(SPEC, prefix="")  # A1's model.pt: Molmo-codebase keys, no "model." prefix
    sd.update({f"action_head.{k}": v for k, v in head.state_dict().items()})
    sd["proprio_projector.fc1.weight"] = torch.zeros(
        SPEC.text_hidden_size, S
    )  # built by the VLA, unused by FM
    sd.update(sd_update or {})
    torch.save(sd, d / "model.pt")
    tok_dir = d / "tokenizer"
    tiny_molmo_tokenizer(SPEC).save_pretrained(tok_dir)
    model = {
        "n_heads": SPEC.text_heads,
        "num_actions_chunk": T,
        "vit_layers": list(SPEC.vision_feature_layers),
        "rope_theta": 1e6,
        "action_head": "flow_matching",
        "action_head_flow_matching_heads": HEADS,
        "num_diffusion_inference_steps": 10,
        "tokenizer": {"identifier": str(tok_dir)},
    }
    data = {} if sequence_length is None else {"sequence_length": sequence_length}
    (d / "config.yaml").write_text(yaml.safe_dump({"model": model, "data": data}))
    (d / "dataset_statistics.json").write_text(json.dumps(stats))
    return d


@pytest.fixture(scope="module")
def released_head():
    torch.manual_seed(0)
    return ReleasedFlowMatchingHead()


@pytest.fixture(scope="module")
def released_metaworld(tmp_path_factory, released_head):
    stats = {"metaworld_button_press": _stats(4, 4, np.random.default_rng(0))}
    return _release(tmp_path_factory.mktemp("a1_release"), released_head, stats)


@pytest.fixture(scope="module")
def converted_metaworld(released_metaworld, tmp_path_factory):
    from lerobot_policy_a1.convert_a1 import convert_a1_checkpoint

    out = tmp_path_factory.mktemp("a1_converted") / "a1"
    return convert_a1_checkpoint(
        released_metaworld, out, features="metaworld", vision_heads=SPEC.vision_heads
    )


def _batch(task="push"):
    g = torch.Generator().manual_seed(1)
    return {
        "observation.image": torch.rand(1, 3, 56, 56, generator=g),
        "observation.state": torch.randn(1, 4, generator=g),
        "task": [task],
    }


def _velocity_pair(policy, released, batch, x_t, t):
    m = policy.model
    state = m.pad_state(batch)
    inputs = m.prefix(batch, state)
    kv = m.backbone.stack.run(inputs, collect_kv=True, final_norm=False).key_values
    last = m.num_layers - 1
    with torch.no_grad():
        prefix = [m.head.prefix_kv(i, p) for i, p in enumerate(kv)]
        ours = m.head(prefix, inputs.attention_mask, state, x_t, t, [last])[last]
        ref = released.velocity(kv, state, x_t, t, SEQ_LEN)
    return ours, ref


def test_converted_expert_numbers_its_action_tokens_after_the_padded_prompt(
    converted_metaworld, released_head
):
    from lerobot_policy_a1.modeling_a1 import A1Policy

    policy = A1Policy.from_pretrained(converted_metaworld).eval()
    c = policy.config
    assert (c.expert_hidden_size, c.expert_num_heads, c.max_action_dim, c.chunk_size) == (H, HEADS, A, T)
    assert c.expert_position_offset == SEQ_LEN  # config.yaml's data.sequence_length
    assert (c.exit_warm_start_chain, c.exit_discrepancy_dims) == ("released", "padded")
    assert not any("lm_head" in k for k in policy.state_dict())  # the unused 155.6M-parameter head is dropped
    x_t, t = torch.randn(1, T, A), torch.tensor([0.7])
    ours, ref = _velocity_pair(policy, released_head, _batch(), x_t, t)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)
    # the convention matters: numbering after the valid prefix (our native default) gives another field
    policy.model.head.position_offset = None
    other, _ = _velocity_pair(policy, released_head, _batch(), x_t, t)
    assert (other - ref).abs().max() > 1e-2


def test_a_prompt_longer_than_the_released_sequence_length_is_refused(converted_metaworld):
    from lerobot_policy_a1.modeling_a1 import A1Policy

    policy = A1Policy.from_pretrained(converted_metaworld).eval()
    policy.model.head.position_offset = 8  # shorter than this prompt (the released collator asserts the same)
    with pytest.raises(ValueError, match="expert_position_offset=8 .* data.sequence_length"):
        policy.predict_action_chunk(_batch())


def _official_normalize_proprio(x, st):
    """``normalize_proprio`` with BOUNDS_Q99 (exit_vla_utils.py)."""
    lo, hi = np.array(st["q01"]), np.array(st["q99"])
    return np.clip(2 * (x - lo) / (hi - lo + 1e-8) - 1, -1.0, 1.0)


def _official_unnormalize(a, st):
    """``_unnormalize_actions`` with BOUNDS_Q99: the masked-out dims (the gripper) pass through."""
    lo, hi, mask = np.array(st["q01"]), np.array(st["q99"]), np.array(st["mask"])
    return np.where(mask, 0.5 * (a + 1) * (hi - lo + 1e-8) + lo, a)


def test_converted_processors_apply_the_released_statistics_clip_and_gripper_mask(
    converted_metaworld, released_metaworld
):
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot_policy_a1.modeling_a1 import A1Policy

    policy = A1Policy.from_pretrained(converted_metaworld)
    released = json.loads((released_metaworld / "dataset_statistics.json").read_text())
    assert (
        json.loads((converted_metaworld / "dataset_statistics.json").read_text()) == released
    )  # carried along
    st = released["metaworld_button_press"]
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(converted_metaworld))
    hi = np.array(st["proprio"]["q99"])
    state = np.array([hi[0] + 5.0, 0.1, -0.3, -9.0], dtype=np.float32)  # two dims beyond the q01/q99 bounds
    out = pre({**_batch(), "observation.state": torch.from_numpy(state)[None]})["observation.state"][0]
    ref = _official_normalize_proprio(state.astype(np.float64), st["proprio"])
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-6)
    assert out[0] == 1.0 and out[3] == -1.0  # clipped as the released normalize_proprio
    a = np.array([[0.5, -0.25, 1.0, 0.8], [-1.0, 0.0, 0.3, 0.2]], dtype=np.float32)  # normalised model output
    got = post(torch.from_numpy(a)[None]).numpy()[0]
    np.testing.assert_allclose(got, _official_unnormalize(a.astype(np.float64), st["action"]), atol=1e-6)
    assert policy.config.libero_gripper is False  # not a LIBERO checkpoint: the gripper stays as predicted


def _official_libero_gripper(a):
    """``normalize_gripper_action(binarize=True)`` then ``invert_gripper_action`` (model family "a1")."""
    a = a.copy()
    a[..., -1] = np.sign(2 * (a[..., -1] - 0.0) / (1.0 - 0.0) - 1)
    a[..., -1] *= -1.0
    return a


def test_libero_checkpoint_emits_lerobot_libero_gripper_commands(tmp_path, released_head):
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot_policy_a1.convert_a1 import convert_a1_checkpoint
    from lerobot_policy_a1.modeling_a1 import A1Policy

    stats = {"libero_spatial_no_noops": _stats(8, 7, np.random.default_rng(1))}
    (tmp_path / "rel").mkdir()
    src = _release(tmp_path / "rel", released_head, stats)
    out = convert_a1_checkpoint(src, tmp_path / "a1", features="libero", vision_heads=SPEC.vision_heads)
    policy = A1Policy.from_pretrained(out)
    assert policy.config.libero_gripper and list(policy.config.image_features) == [
        "observation.images.image",
        "observation.images.image2",
    ]
    _, post = make_pre_post_processors(policy.config, pretrained_path=str(out))
    a = np.zeros((4, 7), dtype=np.float32)
    a[:, -1] = [0.9, 0.1, 0.5, 0.6]  # the released LIBERO gripper: 1 = open, 0 = close
    got = post(torch.from_numpy(a)[None]).numpy()[0]
    ref = _official_libero_gripper(
        _official_unnormalize(a.astype(np.float64), stats["libero_spatial_no_noops"]["action"])
    )
    np.testing.assert_allclose(got, ref, atol=1e-6)
    # LeRobot LIBERO (robosuite): -1 opens, +1 closes (its no-op action holds the gripper open with -1)
    assert got[:, -1].tolist() == [-1.0, 1.0, 0.0, -1.0]


def test_non_finite_weights_are_refused_unless_allowed(tmp_path, released_head, capsys):
    from lerobot_policy_a1.convert_a1 import main

    (tmp_path / "rel").mkdir()
    bad = molmo_original_state_dict(SPEC, prefix="")["transformer.blocks.0.ff_out.weight"].clone()
    bad[0, 0] = float("inf")
    src = _release(
        tmp_path / "rel",
        released_head,
        {"k": _stats(4, 4, np.random.default_rng(2))},
        sd_update={"transformer.blocks.0.ff_out.weight": bad},
    )
    args = ["--source=a1", f"--input={src}", "--features=metaworld", f"--vision_heads={SPEC.vision_heads}"]
    assert main([*args, f"--output={tmp_path / 'refused'}"]) == 2
    err = capsys.readouterr()
    assert "transformer.blocks.0.ff_out.weight" in err.err and "--allow_bad_weights=true" in err.err
    assert "action_head.qwen2" in err.out  # the per-module summary was printed first
    assert not (tmp_path / "refused").exists()  # nothing half-written
    assert main([*args, f"--output={tmp_path / 'allowed'}", "--allow_bad_weights=true"]) == 0
    assert (tmp_path / "allowed" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("statistics", r"dataset_statistics.json is missing"),
        ("sequence_length", r"no data.sequence_length .* --sequence_length"),
        ("dims", r"proprio \(observation.state\) statistics have 8 dims but the features say 4"),
    ],
)
def test_incomplete_releases_are_refused_with_the_fix(tmp_path, released_head, broken, message):
    from lerobot_policy_a1.convert_a1 import convert_a1_checkpoint

    stats = {"k": _stats(8 if broken == "dims" else 4, 4, np.random.default_rng(3))}
    src = _release(tmp_path, released_head, stats, None if broken == "sequence_length" else SEQ_LEN)
    if broken == "statistics":
        (src / "dataset_statistics.json").unlink()
    with pytest.raises(ConversionError, match=message):
        convert_a1_checkpoint(src, tmp_path / "out", features="metaworld", vision_heads=SPEC.vision_heads)
    assert not (tmp_path / "out").exists()


def test_mlp_head_release_is_refused_with_the_reason(tmp_path):
    from lerobot_policy_a1.convert_a1 import convert_a1_checkpoint

    sd = molmo_original_state_dict(SPEC, prefix="")
    sd["action_head.model.fc1.weight"] = torch.zeros(4, 4)
    torch.save(sd, tmp_path / "model.pt")
    with pytest.raises(
        ConversionError, match="L1-regression .* only the released flow-matching checkpoints convert"
    ):
        convert_a1_checkpoint(tmp_path, tmp_path / "out", num_heads=4)
    assert not (tmp_path / "out").exists()  # nothing half-written
