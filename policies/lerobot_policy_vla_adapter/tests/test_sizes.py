"""Sizes at the paper's configuration, built on the meta device from the shipped config presets."""

from __future__ import annotations

import pytest
import torch

from lerobot_vla_plugins.heads.bridge_attention import BridgeAttentionPolicy

# Released L1RegressionActionHead at LIBERO sizes (D = 896, A = 7, T = 8, 24 blocks), counted from the released
# module definitions: per block, original = 4 linears 896x896 + LN-Linear FFN + gate = 4,020,353; Pro = 8 linears
# + FFN + gate = 7,235,201 plus film_gen (896 -> 1792) = 1,607,424 that the forward never uses. Shared:
# LN(6272) + Linear(6272 -> 896) + LN(896) + Linear(896 -> 7) = 5,641,223.
RELEASED_ORIGINAL = 24 * 4_020_353 + 5_641_223  # 102,129,695 (the 204 MB bf16 action_head file)
RELEASED_PRO = 24 * (7_235_201 + 1_607_424) + 5_641_223  # 217,864,223 (the 436 MB file)
RELEASED_PRO_FILM = 24 * 1_607_424


@pytest.mark.parametrize(
    ("variant", "released"), [("original", RELEASED_ORIGINAL), ("pro", RELEASED_PRO - RELEASED_PRO_FILM)]
)
def test_l1_head_has_the_released_size_without_film_gen(variant, released):
    with torch.device("meta"):
        head = BridgeAttentionPolicy(
            dim=896, action_dim=7, chunk_size=8, num_layers=24, num_heads=8, variant=variant
        )
    assert sum(p.numel() for p in head.parameters()) == released


@pytest.fixture(scope="module")
def paper_policy():
    from lerobot_policy_vla_adapter.configuration_vla_adapter import VLAAdapterConfig
    from lerobot_vla_tools.cli.info import build_on_meta

    return build_on_meta(VLAAdapterConfig())  # no overrides: the paper's model, Meta-World features


def test_paper_defaults_build_the_prismatic_qwen25_backbone(paper_policy):
    bb = paper_policy.model.backbone
    assert (bb.dino.config.hidden_size, bb.siglip.config.hidden_size, bb.hidden_size) == (1024, 1152, 896)
    # second-to-last blocks: DINOv2-L has 24 blocks, SigLIP-So400m 27; we keep the 23 / 26 whose outputs are used
    assert (bb.dino.config.num_hidden_layers, bb.siglip.config.num_hidden_layers, bb.num_layers) == (
        23,
        26,
        24,
    )
    assert bb.num_image_tokens == 256 and bb.image_spec.image_size == 224
    # fused GELU MLP 2176 -> 8704 -> 896 -> 896 (LoRA adapters excluded)
    projector = sum(p.numel() for n, p in bb.projector.named_parameters() if ".lora_" not in n)
    assert projector == (2176 * 8704 + 8704) + (8704 * 896 + 896) + (896 * 896 + 896) == 27_552_000
    assert len(paper_policy.model.head.blocks) == 24 and paper_policy.model.action_queries.shape == (64, 896)


def test_paper_defaults_train_lora_queries_proprio_and_pro_head(paper_policy):
    m = paper_policy.model
    head = sum(p.numel() for p in m.head.parameters())
    lora = sum(p.numel() for n, p in m.backbone.named_parameters() if ".lora_" in n)
    trainable = sum(p.numel() for p in paper_policy.parameters() if p.requires_grad)
    # Pro head for Meta-World's 4-D action: blocks as released + LN(3584) + Linear(3584 -> 896) + LN + Linear(896 -> 4)
    assert head == 24 * 7_235_201 + 2 * 3584 + 3584 * 896 + 896 + 2 * 896 + 896 * 4 + 4
    assert lora == 97_243_136  # rank 64 on every linear layer of towers, projector and Qwen2
    assert trainable == head + lora + 64 * 896 + (4 * 896 + 896) + (896 * 896 + 896)
