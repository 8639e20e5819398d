"""``lerobot-train`` under ``accelerate launch`` with every rank saving its final weights, for tests.

LeRobot saves checkpoints from the main process only, so whether all processes ended with the same weights
cannot be read from a checkpoint. This launcher runs LeRobot's own ``lerobot-train`` entry point unchanged and,
when LeRobot calls ``Accelerator.end_training()`` after the last step, has each rank write its unwrapped
policy's state dict to ``$VLA_DDP_DUMP_DIR/rank<i>.safetensors``, its initial one to ``rank<i>_init.safetensors``
and the names of its trainable parameters to ``rank<i>_trainable.json``.

Run it as ``accelerate launch --multi_gpu --num_processes=2 -m lerobot_vla_tools.testing.ddp <lerobot-train flags>``
with ``--policy.device=cpu``: accelerate's launcher is torchrun, and LeRobot builds its ``Accelerator`` with
``cpu=True``, so the processes train on CPU over gloo.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _state(model) -> dict:
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def main() -> None:
    from accelerate import Accelerator
    from safetensors.torch import save_file

    dump = Path(os.environ["VLA_DDP_DUMP_DIR"])
    dump.mkdir(parents=True, exist_ok=True)
    original_prepare = Accelerator.prepare
    original_end = Accelerator.end_training

    def prepare(self, *args, **kwargs):
        for obj in args:  # the policy is the first nn.Module LeRobot prepares
            if hasattr(obj, "state_dict") and hasattr(obj, "config"):
                save_file(_state(obj), dump / f"rank{self.process_index}_init.safetensors")
                trainable = sorted(n for n, p in obj.named_parameters() if p.requires_grad)
                (dump / f"rank{self.process_index}_trainable.json").write_text(json.dumps(trainable))
                break
        return original_prepare(self, *args, **kwargs)

    def end_training(self):
        model = self.unwrap_model(self._models[0])
        save_file(_state(model), dump / f"rank{self.process_index}.safetensors")
        return original_end(self)

    Accelerator.prepare = prepare
    Accelerator.end_training = end_training
    from lerobot.scripts.lerobot_train import main as train_main

    sys.argv[0] = "lerobot-train"
    train_main()


def free_port() -> int:
    """A free local TCP port for a process group's rendezvous."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accelerate_command(num_processes: int, port: int, *train_args: str) -> list[str]:
    """The command line that launches ``lerobot-train`` (through this module) on ``num_processes`` CPU processes."""
    bin_dir = Path(sys.executable).parent
    return [
        str(bin_dir / "accelerate"),
        "launch",
        "--multi_gpu",
        f"--num_processes={num_processes}",
        "--num_machines=1",
        f"--main_process_port={port}",
        "--mixed_precision=no",
        "--dynamo_backend=no",
        "-m",
        "lerobot_vla_tools.testing.ddp",
        *train_args,
    ]


if __name__ == "__main__":
    main()
