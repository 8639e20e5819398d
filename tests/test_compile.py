"""``--policy.compile_model=true`` (``lerobot_vla_plugins.speed.compile``): the compiled policies give the eager
policies' outputs, keep their parameter names, and train the same.

Every policy of ours is built twice from its tiny bench case with the same seed (same weights), once with
``compile_model=True``; both predict on the same observations and noise. Two prompts of different lengths per
policy: the second call runs a new input shape through the compiled blocks (a recompilation).
"""

from __future__ import annotations

import pytest
import torch
from lerobot_vla_tools.speed import iter_cases
from lerobot_vla_tools.speed.worker import build_policy, observation_batch, training_batch

from lerobot_vla_plugins.errors import ConfigError
from lerobot_vla_plugins.speed.compile import (
    COMPILE_MODES,
    check_compile_mode,
    compile_repeated_blocks,
    repeated_blocks,
)

#: the tiny bench case of every policy of ours
CASES = {
    "a1": "a1 (tiny, flow matching)@tiny",
    "seer": "seer@tiny",
    "vita_vla": "vita_vla@tiny",
    "vla_adapter": "vla_adapter (pro, tiny)@tiny",
}
PROMPTS = (
    "Press a button from the top",
    "pick up the red block next to the drawer and put it on the top shelf",
)
#: fp32 on CPU; inductor fuses and reorders reductions, so outputs agree to float rounding, not bit for bit
ATOL = 1e-4


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("compile_backbones")


def _build(key: str, scratch, device: str = "cpu", **overrides):
    (case,) = [c for c in iter_cases() if c.key == key]
    over = {**case.resolve_overrides(scratch), **overrides}
    spec = {
        "case": key,
        "policy_type": case.policy_type,
        "size": case.size,
        "overrides": over,
        "features": case.features,
        "device": device,
    }
    return build_policy(spec)


def _chunk(policy, preprocessor, observation) -> torch.Tensor:
    policy.eval()
    policy.reset()
    torch.manual_seed(7)
    with torch.inference_mode():
        return policy.predict_action_chunk(preprocessor(dict(observation)))


#: the default run compiles the cheapest policy; A1, Seer and VITA-VLA (and A1's training) are in the slow run
#: (``./scripts/test.sh -m slow``): each compilation costs 20-40 s on a 2-core CPU
DEFAULT_RUN = ("vla_adapter",)


@pytest.mark.parametrize(
    "policy_type", [p if p in DEFAULT_RUN else pytest.param(p, marks=pytest.mark.slow) for p in sorted(CASES)]
)
def test_compiled_policy_predicts_the_eager_chunks(policy_type, scratch):
    eager, pre, _, cfg = _build(CASES[policy_type], scratch)
    compiled, pre_c, _, cfg_c = _build(CASES[policy_type], scratch, compile_model=True)
    assert cfg_c.compile_model and not cfg.compile_model

    blocks = repeated_blocks(compiled.model)
    assert blocks and all(b._compiled_call_impl is not None for b in blocks)
    assert all(b._compiled_call_impl is None for b in repeated_blocks(eager.model))
    # compiled in place: same parameter names and values (a checkpoint of either loads into the other)
    ref_state, state = eager.state_dict(), compiled.state_dict()
    assert list(state) == list(ref_state)
    assert all(torch.equal(state[k], ref_state[k]) for k in ref_state)

    gen = torch.Generator().manual_seed(3)
    for prompt in PROMPTS:
        observation = observation_batch(cfg.input_features, 2, gen)
        observation["task"] = [prompt, PROMPTS[0]]
        expected = _chunk(eager, pre, observation)
        got = _chunk(compiled, pre_c, observation)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=ATOL, rtol=1e-4)


@pytest.mark.slow
def test_compiled_policy_trains_like_the_eager_one(scratch):
    """A1 (backbone layers and flow-matching expert compiled): same loss and gradients through the compiled
    blocks (AOT autograd)."""
    eager, pre, _, cfg = _build(CASES["a1"], scratch)
    compiled, pre_c, _, _ = _build(CASES["a1"], scratch, compile_model=True)
    raw = training_batch(cfg, cfg.input_features, cfg.output_features, 2, torch.Generator().manual_seed(4))

    def step(policy, preprocessor):
        policy.train()
        torch.manual_seed(11)
        loss, _ = policy.forward(preprocessor(dict(raw)))
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}

    loss, grads = step(eager, pre)
    loss_c, grads_c = step(compiled, pre_c)
    torch.testing.assert_close(loss_c, loss, atol=ATOL, rtol=1e-4)
    assert grads and set(grads) <= set(grads_c)
    for name in grads:
        torch.testing.assert_close(grads_c[name], grads[name], atol=1e-4, rtol=1e-3, msg=name)
    # A compiled block returns a gradient for every parameter it holds: those the loss does not reach (the last
    # backbone layer's MLP: the expert reads only that layer's keys/values) get zeros where eager leaves None.
    extra = set(grads_c) - set(grads)
    assert all(not grads_c[name].any() for name in extra), sorted(extra)


def test_repeated_blocks_are_the_outermost_list_elements_with_submodules():
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.ModuleList([nn.Sequential(nn.Linear(2, 2))])  # nested: compiled as part of Block
            self.proj = nn.Linear(2, 2)

    root = nn.Module()
    root.layers = nn.ModuleList([Block(), Block()])
    root.per_layer = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])  # leaves: not blocks
    root.head = nn.Sequential(nn.ModuleList([nn.Sequential(nn.ReLU())]))
    blocks = repeated_blocks(root)
    assert blocks == [root.layers[0], root.layers[1], root.head[0][0]]

    compiled = compile_repeated_blocks(root)
    assert compiled == blocks and all(b._compiled_call_impl is not None for b in blocks)
    first = [b._compiled_call_impl for b in blocks]
    compile_repeated_blocks(root)  # idempotent
    assert [b._compiled_call_impl for b in blocks] == first


@pytest.mark.parametrize("policy_type", sorted(CASES))
def test_bad_compile_mode_names_the_field(policy_type):
    from lerobot.policies.factory import make_policy_config
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()  # the policy types, as the lerobot-* commands register them
    with pytest.raises(ConfigError, match=rf"{policy_type}: compile_mode='fast' is not one of"):
        make_policy_config(policy_type, compile_mode="fast")
    check_compile_mode(policy_type, COMPILE_MODES[1])  # every torch.compile mode is accepted


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graphs_give_the_eager_chunk(scratch):
    """``compile_mode="reduce-overhead"`` (inductor CUDA graphs) on a GPU: VLA-Adapter's chunk equals eager."""
    eager, pre, _, cfg = _build(CASES["vla_adapter"], scratch, device="cuda")
    compiled, pre_c, _, _ = _build(
        CASES["vla_adapter"], scratch, device="cuda", compile_model=True, compile_mode="reduce-overhead"
    )
    observation = observation_batch(cfg.input_features, 1, torch.Generator().manual_seed(5))
    expected = _chunk(eager, pre, observation)
    for _ in range(3):  # warm-up, graph capture, replay
        got = _chunk(compiled, pre_c, observation)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=1e-4)


def test_prefix_kv_equals_a_cache_filled_with_the_prefix():
    """A1's expert layers read their prefix K/V through ``PrefixKV``: the same output as a ``DynamicCache``."""
    from transformers import DynamicCache, Qwen2Config
    from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer, Qwen2RotaryEmbedding

    from lerobot_vla_plugins.backbones.base import PrefixKV

    torch.manual_seed(0)
    cfg = Qwen2Config(
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_hidden_layers=2,
    )
    cfg._attn_implementation = "sdpa"
    layer = Qwen2DecoderLayer(cfg, layer_idx=1).eval()
    prefix_k, prefix_v = torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    hidden = torch.randn(2, 3, 32)
    positions = torch.arange(5, 8).unsqueeze(0).expand(2, -1)
    pos_emb = Qwen2RotaryEmbedding(cfg)(hidden, positions)
    cache = DynamicCache(config=cfg)
    cache.update(torch.zeros(2, 2, 5, 8), torch.zeros(2, 2, 5, 8), 0)
    cache.update(prefix_k, prefix_v, 1)
    kwargs = {
        "attention_mask": None,
        "position_embeddings": pos_emb,
        "position_ids": positions,
        "use_cache": True,
    }
    expected = layer(hidden, past_key_values=cache, **kwargs)
    got = layer(hidden, past_key_values=PrefixKV(prefix_k, prefix_v), **kwargs)
    torch.testing.assert_close(got, expected, atol=0, rtol=0)
