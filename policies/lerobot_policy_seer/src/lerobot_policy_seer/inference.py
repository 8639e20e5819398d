"""The closed-loop inference of Seer and VITA-VLA: one history loop, each model with its released action rule.

Both models run every control step on a window of the last <= S frames and predict K = 3 actions for every step
of it; what is executed differs between the released evaluations:

* Seer (``OpenRobotLab/Seer`` ``eval_utils_calvin.py``): a short history is padded at the end with the last
  frame and the prediction at position n-1 (the current frame) is read, action 0. Seer's trunk is block-causal,
  so position n-1 does not see the padding: running the n real frames is the same (``pad_history=False``).
* VITA-VLA on CALVIN (``Tencent/VITA@VITA-VLA`` ``utils/eval_utils_calvin_vita.py``, ``ModelWrapper.step``): the
  history is padded to S with the last frame, the model runs on all S turns and the **last** turn's action 1
  (the second of three) is executed: ``arm_action[0, :, 1]``, then ``action[-1]``. The last turn follows the
  padding copies, so this differs from running the n real turns (``pad_history=True``, ``action_index=1``).
* VITA-VLA on LIBERO (``utils/eval_utils_libero_vita.py``): no padding, the last turn's three actions go through
  the temporal ensemble (:class:`~lerobot_policy_seer.ensembling.TemporalEnsembler`).

Each frame is encoded once (the encoders are frozen) and kept as per-frame tensors; the model-specific part is a
``predict`` callable that reads a stacked window and returns the read step's (B, K, A) chunk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .ensembling import TemporalEnsembler


@dataclass(frozen=True)
class ActionRule:
    """Which window the model runs on and which predicted action is executed.

    Attributes:
        pad_history: pad a history shorter than S to S by repeating the last frame (VITA-VLA's CALVIN evaluation).
        action_index: which of the K actions predicted at the read (last) step is executed.
        temporal_ensemble: execute the temporal ensemble of the last K chunks instead (LIBERO evaluations).
        ensemble_temperature: the ensemble's k in w_i = exp(-k i).
    """

    pad_history: bool = False
    action_index: int = 0
    temporal_ensemble: bool = False
    ensemble_temperature: float = 0.01


class HistoryLoop:
    """Keep the last ``history`` frames and turn each new observation into the executed action."""

    def __init__(self, history: int, action_steps: int, rule: ActionRule):
        if not 0 <= rule.action_index < action_steps:
            raise ValueError(
                f"action_index={rule.action_index} is not one of the {action_steps} actions predicted per step"
            )
        self.history, self.action_steps, self.rule = history, action_steps, rule
        self.frames: deque[tuple[Tensor, ...]] = deque(maxlen=history)
        self.ensembler = TemporalEnsembler(rule.ensemble_temperature, action_steps)

    def __len__(self) -> int:
        return len(self.frames)

    def reset(self) -> None:
        self.frames.clear()
        self.ensembler.reset()

    def window(self) -> tuple[Tensor, ...]:
        """The frames to run, each part stacked along dim 1: (B, n, ...) with n <= S, or (B, S, ...) when padded."""
        frames = list(self.frames)
        if self.rule.pad_history:
            frames += [frames[-1]] * (self.history - len(frames))
        return tuple(torch.stack(parts, dim=1) for parts in zip(*frames, strict=True))

    def chunk(self, frame: tuple[Tensor, ...], predict: Callable[..., Tensor]) -> Tensor:
        """Add this step's ``frame`` (per-frame tensors, each (B, ...)); return ``predict(*window)``: the (B, K, A)
        actions predicted at the window's last step."""
        self.frames.append(frame)
        return predict(*self.window())

    def action(self, chunk: Tensor) -> Tensor:
        """This step's (B, A) action from its (B, K, A) chunk under the rule."""
        if self.rule.temporal_ensemble:
            return self.ensembler.update(chunk)
        return chunk[:, self.rule.action_index]
