"""LeRobot's ``evo1`` at test size: ``lerobot-train`` flags for the testing kit's tiny InternVL."""

from __future__ import annotations

#: ``--policy.*`` flags of a tiny evo1 for the 32 px, 4-layer InternVL of ``build_tiny_internvl``
#: (add ``--policy.vlm_model_name=<its path>``).
TINY_EVO1_FLAGS: tuple[str, ...] = (
    "--policy.type=evo1",
    "--policy.image_resolution=[32,32]",
    "--policy.embed_dim=64",
    "--policy.hidden_dim=128",
    "--policy.state_hidden_dim=128",
    "--policy.num_heads=4",
    "--policy.num_layers=2",
    "--policy.chunk_size=8",
    "--policy.n_action_steps=8",
    "--policy.vlm_num_layers=4",
    "--policy.vlm_dtype=float32",
    "--policy.use_flash_attn=false",
    "--policy.max_text_length=256",
    "--policy.num_inference_timesteps=4",
    "--policy.enable_gradient_checkpointing=false",
    "--policy.device=cpu",
    "--policy.push_to_hub=false",
)
