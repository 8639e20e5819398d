"""``accelerate_evo1`` changes how upstream evo1 computes, not what: every switch against the reference path."""

from __future__ import annotations

import pytest
import torch

from lerobot_vla_plugins.speed.evo1 import accelerate_evo1

TINY = {
    "image_resolution": (32, 32),
    "embed_dim": 64,
    "hidden_dim": 128,
    "state_hidden_dim": 128,
    "num_heads": 4,
    "num_layers": 2,
    "chunk_size": 8,
    "n_action_steps": 8,
    "vlm_num_layers": 4,
    "vlm_dtype": "float32",
    "use_flash_attn": False,
    "max_text_length": 256,
    "num_inference_timesteps": 6,
    "enable_gradient_checkpointing": False,
    "device": "cpu",
}


def _policy(backbone):
    """A tiny upstream evo1 for the Meta-World spec: 1 camera of max_views=3, 4-D state and action."""
    from lerobot.policies.evo1.modeling_evo1 import Evo1Policy
    from lerobot.policies.factory import make_policy_config

    from lerobot_vla_plugins.features import metaworld_policy_features

    cfg = make_policy_config("evo1", vlm_model_name=str(backbone), **TINY)
    cfg.input_features, cfg.output_features = metaworld_policy_features()
    torch.manual_seed(0)
    return Evo1Policy(cfg).eval()


def _batch(b=2):
    g = torch.Generator().manual_seed(0)
    return {
        "observation.image": torch.rand(b, 3, 480, 480, generator=g),
        "observation.state": torch.randn(b, 24, generator=g),
        # different prompt lengths: the tokenizer pads, so the head's key-padding mask matters
        "task": ["Press a button from the top", "push"][:b],
    }


def _chunk(policy, batch, seed=5):
    torch.manual_seed(seed)
    return policy.predict_action_chunk(batch)


@pytest.fixture(scope="module")
def reference(tiny_internvl):
    policy = _policy(tiny_internvl)
    batch = _batch()
    return (
        batch,
        _chunk(policy, batch),
        policy.model.get_vl_embeddings(
            images=[batch["observation.image"]],
            image_mask=torch.tensor([[True, False, False]] * 2),
            prompt=batch["task"],
        ),
    )


@pytest.mark.parametrize(
    "switches",
    [
        {"cache_context_kv": True, "skip_absent_views": False, "attn_implementation": None},
        {"cache_context_kv": False, "skip_absent_views": True, "attn_implementation": None},
        {"cache_context_kv": False, "skip_absent_views": False, "attn_implementation": "sdpa"},
        {"cache_context_kv": True, "skip_absent_views": True, "attn_implementation": "sdpa"},
    ],
    ids=["context-kv-cache", "skip-absent-views", "sdpa", "all"],
)
def test_each_speed_up_gives_the_reference_action_chunk(reference, tiny_internvl, switches):
    batch, expected, _ = reference
    fast = accelerate_evo1(_policy(tiny_internvl), **switches)
    torch.testing.assert_close(_chunk(fast, batch), expected, rtol=1e-4, atol=1e-5)


def test_skipping_absent_views_keeps_every_token_the_head_attends_to(reference, tiny_internvl):
    batch, _, (tokens, valid) = reference
    fast = accelerate_evo1(_policy(tiny_internvl), cache_context_kv=False, attn_implementation=None)
    seen = []
    fast.model.embedder.model.vision_tower.register_forward_hook(
        lambda m, args, kw, out: seen.append(len(kw["pixel_values"])), with_kwargs=True
    )
    fast_tokens, fast_valid = fast.model.get_vl_embeddings(
        images=[batch["observation.image"]],
        image_mask=torch.tensor([[True, False, False]] * 2),
        prompt=batch["task"],
    )
    assert seen == [2], "the vision tower saw the 2 present images, not 2 x max_views = 6"
    assert fast_valid.equal(valid) and not valid.all(), "absent views and padding are masked"
    torch.testing.assert_close(fast_tokens[valid], tokens[valid], rtol=1e-5, atol=1e-5)


def test_the_training_loss_is_unchanged(tiny_internvl):
    batch = _batch()
    batch["action"] = torch.rand(2, 8, 24) * 2 - 1
    ref, fast = _policy(tiny_internvl), accelerate_evo1(_policy(tiny_internvl))
    ref.train(), fast.train()
    torch.manual_seed(9)
    loss_ref, _ = ref.forward(batch)
    torch.manual_seed(9)
    loss_fast, _ = fast.forward(batch)
    torch.testing.assert_close(loss_fast, loss_ref, rtol=1e-5, atol=1e-6)


def test_only_evo1_policies_are_accepted():
    with pytest.raises(TypeError, match="expects LeRobot's Evo1Policy, got Linear"):
        accelerate_evo1(torch.nn.Linear(2, 2))


def test_under_the_official_context_every_view_reaches_the_head(reference, tiny_internvl):
    """The official context (``processors.evo1``) lets the head attend to the absent cameras' tokens, so skipping
    their vision-tower pass would change the actions: the speed-ups then give the reference chunk of that context."""
    from lerobot_vla_plugins.processors.evo1 import official_context

    batch = reference[0]
    ref_policy = _policy(tiny_internvl)
    with official_context(ref_policy):
        expected = _chunk(ref_policy, batch)
    fast = accelerate_evo1(_policy(tiny_internvl))
    seen = []
    fast.model.embedder.model.vision_tower.register_forward_hook(
        lambda m, args, kw, out: seen.append(len(kw["pixel_values"])), with_kwargs=True
    )
    with official_context(fast):
        got = _chunk(fast, batch)
    assert seen == [6], "all 2 x max_views = 6 view slots went through the vision tower"
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(expected, reference[1], atol=1e-3), "the official context changes the actions"
