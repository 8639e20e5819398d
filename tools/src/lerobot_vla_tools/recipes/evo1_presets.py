"""Evo-1's evaluation settings for LeRobot's upstream ``evo1`` policy on Meta-World, LIBERO and RoboTwin.

The Evo-1 paper (Sec. 4.1, supplement Sec. 1-2) gives the training settings (horizon 50, state/action padded to
24, 448x448 images) but not the evaluation-time ones; those are in the authors' evaluation clients and server
(MINT-SJTU/Evo-1, branch ``evo1-flash`` at ``1bf31c4``):

================  =========================================  ==========  =============  ====================
benchmark         views (Evo-1 image slots, missing masked)  state       actions/query  denoising steps
================  =========================================  ==========  =============  ====================
Meta-World        corner2 camera, rotated 180 degrees        obs[0:8]    15 (HORIZON)   50 (Evo1_server.py)
LIBERO            agentview, wrist (both rotated 180)        8-D eef     14 (horizon)   50
RoboTwin 2.0      head, left wrist, right wrist              14 joints   37 (horizon)   50
================  =========================================  ==========  =============  ====================

(``MetaWorld_evaluation/mt50_evo1_client_prompt.py``, ``LIBERO_evaluation/libero_client_4tasks.py``,
``RoboTwin_evaluation/policy/Evo1/deploy_policy.yml``, ``Evo_1/scripts/Evo1_server.py`` which forces
``num_inference_timesteps = 50``.) A preset turns one row into ``lerobot-eval`` flags for LeRobot's ``evo1``
(``--policy.*`` and ``--env.*``) and maps the benchmark's cameras onto the checkpoint's view slots.
``lerobot-vla-bench`` applies the preset when the checkpoint is an ``evo1`` one (``--preset=auto``); flags
given on its command line win.

Where LeRobot's environments cannot reproduce the official client, ``Evo1Preset.differences`` says so; those
are reported with the results rather than patched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

BENCHMARKS = ("metaworld", "libero", "robotwin")
LIBERO_SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")

# Paper / official-code sources quoted by the presets.
_SERVER = "Evo_1/scripts/Evo1_server.py: num_inference_timesteps = 50"


@dataclass(frozen=True)
class Evo1Preset:
    """Evo-1's evaluation settings for one benchmark, as LeRobot ``evo1`` / env flags.

    Attributes:
        benchmark: ``metaworld``, ``libero`` or ``robotwin``.
        views: the env's camera keys (after LeRobot's env processing) in Evo-1's image-slot order.
        state_layout: what ``observation.state`` holds, and how it compares with what Evo-1 was fed.
        state_dim: size of the env's ``observation.state`` (S); the policy pads it to ``max_state_dim`` (24).
        n_action_steps: actions executed per policy query (the official client's horizon).
        num_inference_timesteps: Euler steps of the flow-matching head per query.
        policy_flags: every ``--policy.<field>`` value of the preset (includes the two above).
        env_flags: ``--env.<field>`` values.
        sources: where each value comes from.
        differences: what LeRobot's env or ``evo1`` does differently from the official client.
    """

    benchmark: str
    views: tuple[str, ...]
    state_layout: str
    state_dim: int
    n_action_steps: int
    num_inference_timesteps: int
    policy_flags: dict[str, object] = field(default_factory=dict)
    env_flags: dict[str, object] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    differences: tuple[str, ...] = ()

    def rename_map(self, policy_views: Sequence[str]) -> dict[str, str]:
        """``--rename_map`` from this benchmark's cameras to a checkpoint's camera keys, slot by slot.

        Args:
            policy_views: the checkpoint's visual input keys in its order (Evo-1 feeds views to image slots in
                this order), e.g. ``["observation.images.image_1"]`` for a checkpoint trained on other names.

        Returns:
            ``{env_key: policy_key}`` for the slots whose names differ; empty when the checkpoint already uses the
            env's names (or has more views than the benchmark provides, which the feature check reports).
        """
        policy_views = [k for k in policy_views if ".empty_camera_" not in k]
        if set(policy_views) <= set(self.views) or len(policy_views) > len(self.views):
            return {}
        return {env: pol for env, pol in zip(self.views, policy_views, strict=False) if env != pol}


def _metaworld() -> Evo1Preset:
    return Evo1Preset(
        benchmark="metaworld",
        views=("observation.image",),
        state_layout=(
            "agent_pos = raw observation[0:4]: hand xyz + gripper opening (LeRobot's MetaworldEnv); the official client "
            "sends observation[0:8] (adds the first object's xyz and one quaternion component)"
        ),
        state_dim=4,
        n_action_steps=15,
        num_inference_timesteps=50,
        policy_flags={"n_action_steps": 15, "num_inference_timesteps": 50},
        sources=(
            "MetaWorld_evaluation/mt50_evo1_client_prompt.py: HORIZON = 15, one image + 2 masked slots "
            "(image_mask [1, 0, 0]), action_mask 4 of 24, 10 episodes per task",
            _SERVER,
            "Evo-1 paper Sec. 4.1.1: 10 trials per task, average of five runs, four difficulty groups",
        ),
        differences=(
            "episodes last 500 steps (LeRobot's MetaworldEnv); the official client stops at 400",
            "the official client centre-crops the camera image to 2/3 before resizing to 448; LeRobot feeds the "
            "whole 480x480 frame (Evo-1 resizes it to 448)",
            "state: LeRobot's env gives 4 values (hand xyz, gripper); the client sends 8 (adds the first object's xyz "
            "and one quaternion component)",
        ),
    )


# The official LIBERO client runs max_steps queries of 14 actions: [25, 25, 25, 95] for the four suites.
_LIBERO_QUERIES = {"libero_spatial": 25, "libero_object": 25, "libero_goal": 25, "libero_10": 95}


def _libero(suite: str) -> Evo1Preset:
    if suite not in LIBERO_SUITES:
        raise ValueError(
            f"evo1 preset: unknown LIBERO suite {suite!r}; choose one of {', '.join(LIBERO_SUITES)}"
        )
    horizon = 14
    return Evo1Preset(
        benchmark="libero",
        views=("observation.images.image", "observation.images.image2"),
        state_layout=(
            "eef position (3) + eef axis-angle (3) + gripper qpos (2), built by LeRobot's LiberoProcessorStep: the "
            "same 8 values the official client sends"
        ),
        state_dim=8,
        n_action_steps=horizon,
        num_inference_timesteps=50,
        policy_flags={
            "n_action_steps": horizon,
            "num_inference_timesteps": 50,
            "postprocess_action_dim": 7,
            # Client: gripper command a[6] > 0.5 -> -1, else +1.
            "binarize_gripper": True,
            "gripper_threshold": 0.5,
            "gripper_above_threshold_value": -1.0,
            "gripper_below_threshold_value": 1.0,
        },
        env_flags={
            "observation_height": 448,
            "observation_width": 448,
            "episode_length": _LIBERO_QUERIES[suite] * horizon,
            "control_mode": "relative",
        },
        sources=(
            "LIBERO_evaluation/libero_client_4tasks.py: horizon = 14, max_steps = [25, 25, 25, 95] queries, 448x448 "
            "renders rotated 180 degrees, dummy third view masked (image_mask [1, 1, 0]), gripper a6 > 0.5 -> -1 else 1",
            _SERVER,
        ),
        differences=(
            "LeRobot's LIBERO env draws init state e of each task for episode e (50 per task); the official client "
            "uses init states 0-9 in each of its runs",
        ),
    )


def _robotwin() -> Evo1Preset:
    horizon = 37
    return Evo1Preset(
        benchmark="robotwin",
        views=(
            "observation.images.head_camera",
            "observation.images.left_camera",
            "observation.images.right_camera",
        ),
        state_layout="joint_action vector: 7 joints per arm incl. gripper (14), what the official client sends",
        state_dim=14,
        n_action_steps=horizon,
        num_inference_timesteps=50,
        policy_flags={"n_action_steps": horizon, "num_inference_timesteps": 50, "postprocess_action_dim": 14},
        sources=(
            "RoboTwin_evaluation/policy/Evo1/deploy_policy.yml: horizon 37; deploy_policy.py: 3 views "
            "(image_mask [1, 1, 1]), action_mask 14 of 24",
            _SERVER,
            "Evo-1 paper Sec. 4.1.3: 4 tasks, 100 trials each, easy (clean) and hard (randomized) settings",
        ),
        differences=(
            "the official client smooths each 50-action chunk with a Gaussian kernel (size 9) before executing it; "
            "LeRobot's evo1 has no such step, so actions run unsmoothed (the client's comment: about half the "
            "success rate without it)",
            "instructions: LeRobot's RoboTwin env uses the task name as the prompt; the official client uses "
            "RoboTwin's generated instructions",
        ),
    )


def evo1_preset(benchmark: str, suite: str | None = None) -> Evo1Preset:
    """Evo-1's evaluation settings for ``benchmark`` (``metaworld``, ``libero`` with its ``suite``, ``robotwin``).

    Raises:
        ValueError: unknown benchmark or LIBERO suite (the message lists the valid names).
    """
    if benchmark == "metaworld":
        return _metaworld()
    if benchmark == "libero":
        if suite is None:
            raise ValueError(f"evo1 preset: LIBERO needs a suite ({', '.join(LIBERO_SUITES)})")
        return _libero(suite)
    if benchmark == "robotwin":
        return _robotwin()
    raise ValueError(f"evo1 preset: unknown benchmark {benchmark!r}; Evo-1 reports {', '.join(BENCHMARKS)}")
