"""``lerobot-train`` with Evo-1's training augmentation available: what ``lerobot-vla-evo1-recipe`` runs per stage.

``python -m lerobot_vla_tools.recipes.evo1_train <lerobot-train options>`` registers the ``Evo1Augmentation``
dataset transform type (``recipes/evo1_augmentation.py``) and then runs LeRobot's ``lerobot-train`` unchanged, so a
stage (or its resume) can use ``--dataset.image_transforms.tfs='{"evo1": {"type": "Evo1Augmentation", ...}}'``.
"""

from __future__ import annotations

from .evo1_augmentation import register_evo1_augmentation


def main() -> None:
    register_evo1_augmentation()
    from lerobot.scripts.lerobot_train import main as lerobot_train

    lerobot_train()


if __name__ == "__main__":
    main()
