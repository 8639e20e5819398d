"""VITA-VLA's input: the released system prompt and chat template, tokenised as the released code does, with
49 image tokens per view, one state token and three action tokens per turn."""

from __future__ import annotations

import re

import pytest
import torch
from lerobot_policy_vita_vla.configuration_vita_vla import VITA_SYSTEM_PROMPT
from lerobot_policy_vita_vla.modeling_vita_vla import ACTION_TOKEN, STATE_TOKEN, build_turns_prompt

# Tencent/VITA@VITA-VLA utils/conversation.py, conv_qwen2p5_instruct.system[0], laid out as in the source file
RELEASED_SYSTEM_PROMPT = (  # each physical line of the source string, trailing spaces included
    "You are an AI robot and your name is VITA. \n"
    "- \n"
    "        Your aim is to be helpful, honest and harmless. \n"
    "- \n"
    "        You are a large language model in the field of embodied intelligence. \n"
    "        Please combine the macro action instructions(maybe None) with \n"
    "        the current state of the robotic arm (the first six values represent the arm's state, \n"
    "        and the seventh value represents the gripper's state), \n"
    "        as well as the observations from the camera (primary image, wrist image), \n"
    "        to provide me with the next action output. You need to do this step by step, \n"
    "        predicting only three future actions at each step. \n"
)


def released_prompt(language: str, sequence_length: int) -> str:
    """``prepare_data_vita`` + ``Conversation.get_prompt`` (Qwen2p5Instruct, image modality), transcribed."""
    source = []
    for _ in range(sequence_length):
        value = "<image> <image> <state>" if "no lang" in language else f"<image> <image> {language} <state>"
        source += [("user", value), ("assistant", " ".join(["<action>"] * 3))]
    ret = "<|im_start|>" + "system\n" + RELEASED_SYSTEM_PROMPT + "<|im_end|>\n"
    for i, (role, message) in enumerate(source):
        body = role + "\n" + message
        ret += f"<|im_start|>{body}<|im_end|>\n" if i < len(source) - 1 else f"<|im_start|>{body}<|im_end|>"
    return ret


def test_system_prompt_is_the_released_one_character_for_character():
    assert VITA_SYSTEM_PROMPT == RELEASED_SYSTEM_PROMPT


def test_prompt_is_the_released_multi_turn_conversation():
    ours = build_turns_prompt("put the bowl on the plate", 3, 2, "<image>", VITA_SYSTEM_PROMPT)
    assert ours == released_prompt("put the bowl on the plate", 3)
    assert build_turns_prompt("no lang", 1, 2, "<image>", VITA_SYSTEM_PROMPT) == released_prompt("no lang", 1)


def test_added_special_tokens_tokenise_like_the_released_chunkwise_tokeniser(tiny_vita_path):
    """tokenizer_image_action_token splits at <image>/<action>/<state> and tokenises each piece on its own."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_vita_path)
    placeholder = {"<image>": "<IMG_CONTEXT>", "<state>": STATE_TOKEN, "<action>": ACTION_TOKEN}
    text = released_prompt("press the button from the top", 2)
    expected = []
    for chunk in re.split(r"(<action>|<image>|<state>)", text):
        if chunk in placeholder:
            expected.append(tok.convert_tokens_to_ids(placeholder[chunk]))
        elif chunk:
            expected += tok(chunk, add_special_tokens=False).input_ids
    ours = tok(
        build_turns_prompt("press the button from the top", 2, 2, "<IMG_CONTEXT>", VITA_SYSTEM_PROMPT),
        add_special_tokens=False,
    ).input_ids
    assert ours == expected


def test_each_turn_carries_49_tokens_per_image_one_state_and_three_action_tokens(make_vita):
    policy = make_vita("only_finetune")
    model = policy.model
    assert model.backbone.num_image_tokens == 49  # 56 px / 4 px patches = 14 x 14, pixel shuffle -> 7 x 7
    b, s = 2, 2
    images, state = torch.rand(b, s, 1, 3, 64, 64), torch.randn(b, s, 4)
    state_tokens = model.state_encoder(state)
    action_tokens = model.action_token.view(1, 1, -1).expand(b, s * 3, -1)
    inputs = model.backbone.prepare_inputs(
        images.flatten(1, 2),
        model.prompts(["press", "open the window"], s),
        inline={"<state>": state_tokens, "<action>": action_tokens},
    )
    assert inputs.image_positions.shape == (b, s * 49)
    pos_state, pos_action = inputs.extra_positions["<state>"], inputs.extra_positions["<action>"]
    assert pos_state.shape == (b, s) and pos_action.shape == (b, s * 3)
    rows = torch.arange(b).unsqueeze(1)
    assert torch.allclose(inputs.inputs_embeds[rows, pos_state], state_tokens)
    assert torch.allclose(inputs.inputs_embeds[rows, pos_action], action_tokens)
    # eq. (1): in each turn the state token follows the images and text and precedes the three action tokens
    assert (pos_state[:, :1] < pos_action[:, :3]).all() and (pos_action[:, 2:3] < pos_state[:, 1:2]).all()
    assert (inputs.image_positions[:, 48:49] < pos_state[:, :1]).all()


def test_an_action_token_sees_its_own_turn_and_earlier_turns_only(make_vita):
    policy = make_vita("only_finetune").eval()
    images, state = torch.rand(1, 2, 1, 3, 64, 64), torch.randn(1, 2, 4)
    out = policy.model(images, state, ["press"])
    changed = images.clone()
    changed[:, 1] = torch.rand_like(changed[:, 1])
    out2 = policy.model(changed, state, ["press"])
    assert (out[:, 0] - out2[:, 0]).abs().max() < 1e-7  # turn 0 cannot see turn 1's images
    assert (out[:, 1] - out2[:, 1]).abs().max() > 1e-6


def _obs(n):
    g = torch.Generator().manual_seed(1)
    return [
        {
            "observation.image": torch.rand(1, 3, 64, 64, generator=g),
            "observation.state": torch.randn(1, 4, generator=g),
            "task": ["press"],
        }
        for _ in range(n)
    ]


def _direct_chunk(policy, frames, states):
    """The released CALVIN ModelWrapper.step on given turns: (arm, gripper) of every turn, K actions each."""
    with torch.no_grad():
        mapped = policy.model(torch.stack(frames, 1).unsqueeze(2), torch.stack(states, 1), ["press"])
        arm, logit = policy.model.action_head(mapped)
    return arm, torch.sigmoid(logit)


def test_calvin_rule_pads_the_history_with_the_last_frame_and_executes_the_second_action(make_vita):
    """eval_utils_calvin_vita.py: input = frames + last frame repeated up to S; action = arm[0, :, 1][-1]."""
    policy = make_vita("only_finetune", binarize_gripper=False)  # defaults: pad_history, executed_action=1
    obs = _obs(3)
    actions = [policy.select_action(o) for o in obs]
    assert len(policy._history) == 2
    image = [o["observation.image"] for o in obs]
    state = [o["observation.state"] for o in obs]
    # step 0: one real frame, padded to S = 2 turns with itself; the last (padded) turn is read
    arm, grip = _direct_chunk(policy, [image[0], image[0]], [state[0], state[0]])
    assert torch.allclose(actions[0][0, :3], arm[0, -1, 1], atol=1e-5)
    assert torch.allclose(actions[0][0, 3], 2 * grip[0, -1, 1, 0] - 1, atol=1e-5)
    # step 2: the window is full (frames 1, 2), no padding
    arm, _ = _direct_chunk(policy, image[1:], state[1:])
    assert torch.allclose(actions[2][0, :3], arm[0, -1, 1], atol=1e-5)
    # the padding changes the result: reading the single unpadded turn is another action
    arm_unpadded, _ = _direct_chunk(policy, image[:1], state[:1])
    assert not torch.allclose(arm_unpadded[0, -1, 1], arm[0, -1, 1])


def test_libero_rule_runs_the_observed_turns_and_ensembles(make_vita):
    """eval_utils_libero_vita.py: no padding, the last turn's chunk through the exp(-0.01 i) temporal ensemble."""
    import math

    policy = make_vita("only_finetune", binarize_gripper=False, pad_history=False, temporal_ensemble=True)
    obs = _obs(2)
    actions = [policy.select_action(o) for o in obs]
    image = [o["observation.image"] for o in obs]
    state = [o["observation.state"] for o in obs]
    first, _ = _direct_chunk(policy, image[:1], state[:1])  # 1 turn, not padded
    second, _ = _direct_chunk(policy, image, state)
    assert torch.allclose(actions[0][0, :3], first[0, -1, 0], atol=1e-5)
    # step 1 averages the step-0 prediction for step 1 (weight exp(0)) and this step's first (exp(-0.01))
    w0, w1 = 1.0, math.exp(-0.01)
    expected = (w0 * first[0, -1, 1] + w1 * second[0, -1, 0]) / (w0 + w1)
    assert torch.allclose(actions[1][0, :3], expected, atol=1e-5)


def test_executed_action_outside_the_chunk_is_refused():
    from lerobot_policy_vita_vla.configuration_vita_vla import VitaVlaConfig

    from lerobot_vla_plugins.errors import ConfigError

    with pytest.raises(ConfigError, match=r"executed_action=3 is not one of the 3 actions.*\[0, 2\]"):
        VitaVlaConfig(executed_action=3)
