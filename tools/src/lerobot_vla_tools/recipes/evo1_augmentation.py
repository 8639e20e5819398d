"""The official Evo-1 training image path (``--use_augmentation``) as a LeRobot dataset image transform.

MINT-SJTU/Evo-1 (``evo1-flash`` @ 1bf31c4, ``Evo_1/dataset/lerobot_dataset_pretrain_mp.py``) turns every decoded
camera frame (a PIL image) into the model's input with::

    basic = Resize((448, 448), BICUBIC) -> ToTensor
    aug   = RandomResizedCrop(448, scale=(0.95, 1.0), BICUBIC) -> RandomRotation((-5, 5), BICUBIC)
            -> ColorJitter(brightness=0.3, contrast=0.4, saturation=0.5, hue=0.08) -> ToTensor
    image = aug(img) if random.random() < 0.5 else basic(img)        # each view of each sample on its own

:class:`Evo1Augmentation` applies the same torchvision transforms to the same PIL images (LeRobot's frames are
``uint8 / 255`` floats, so the round trip through PIL is exact). Its output is ``size`` x ``size`` in both branches,
so LeRobot's ``evo1`` resize to ``image_resolution`` is then the identity, as the official embedder's is for 448
inputs. LeRobot builds dataset transforms by type name (``--dataset.image_transforms.tfs``) from torchvision and its
own table only, so :func:`register_evo1_augmentation` adds this one to that table; ``recipes/evo1_train.py`` does so
before it runs ``lerobot-train``.
"""

from __future__ import annotations

import torch
import torchvision.transforms as T  # noqa: N812
from torchvision.transforms.functional import InterpolationMode, to_pil_image

#: The type name ``--dataset.image_transforms.tfs`` refers to.
TRANSFORM_NAME = "Evo1Augmentation"


class Evo1Augmentation(torch.nn.Module):
    """Evo-1's ``--use_augmentation`` image path: with probability ``p`` the augmentation, else the plain resize.

    Args:
        size: output side (the policy's ``image_resolution``; 448 in the paper).
        p: probability of the augmented branch (official: 0.5).
        scale: ``RandomResizedCrop`` area range (official: 0.95-1.0; aspect ratio torchvision's default 3/4-4/3).
        degrees: ``RandomRotation`` range, +-degrees (official: 5).
        brightness, contrast, saturation, hue: ``ColorJitter`` (official: 0.3, 0.4, 0.5, 0.08).
    """

    def __init__(
        self,
        size: int = 448,
        p: float = 0.5,
        scale: tuple[float, float] = (0.95, 1.0),
        degrees: float = 5.0,
        brightness: float = 0.3,
        contrast: float = 0.4,
        saturation: float = 0.5,
        hue: float = 0.08,
    ):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Evo1Augmentation: p={p} must be a probability in [0, 1]")
        self.p = p
        bicubic = InterpolationMode.BICUBIC
        self.basic = T.Compose([T.Resize((size, size), interpolation=bicubic), T.ToTensor()])
        self.aug = T.Compose(
            [
                T.RandomResizedCrop(size, scale=tuple(scale), interpolation=bicubic),
                T.RandomRotation(degrees=(-degrees, degrees), interpolation=bicubic),
                T.ColorJitter(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue),
                T.ToTensor(),
            ]
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(C, H, W)`` or ``(..., C, H, W)`` float in [0, 1] -> ``(..., C, size, size)``; each frame draws on its own."""
        if image.dim() > 3:
            return torch.stack([self.forward(frame) for frame in image])
        branch = self.aug if torch.rand(()) < self.p else self.basic
        return branch(to_pil_image(image.clamp(0.0, 1.0).cpu())).to(device=image.device, dtype=image.dtype)


def register_evo1_augmentation() -> None:
    """Make ``type: Evo1Augmentation`` buildable by LeRobot's ``ImageTransforms`` (idempotent).

    Raises:
        RuntimeError: this LeRobot version has no table of custom transform types.
    """
    from lerobot.transforms import transforms

    table = getattr(transforms, "_CUSTOM_TRANSFORMS", None)
    if not isinstance(table, dict):
        raise RuntimeError(
            "this LeRobot has no lerobot.transforms.transforms._CUSTOM_TRANSFORMS table; run the recipe with "
            "--augmentation=lerobot or --augmentation=none"
        )
    table.setdefault(TRANSFORM_NAME, Evo1Augmentation)
