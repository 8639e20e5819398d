"""``lerobot-a1-calibrate``: calibrate A1's early-exit thresholds on a LeRobot dataset (paper section 3.3.1).

Runs the policy's early-exit walk without exiting over ``--num_samples`` frames, collects the discrepancy matrix
V (K exits x N frames, eq. 7), turns the budget ``--exit_dist``/``--exit_ratio`` into thresholds by filtered
quantiles (eq. 8-9, ``lerobot_vla_plugins.adaptive.calibrate_thresholds``) and stores, next to the checkpoint,
``exit_calibration.json`` (thresholds and what they are valid for) and ``exit_discrepancies.safetensors`` (V).
``A1Policy.from_pretrained`` loads them, so ``lerobot-eval --policy.path=<same dir>`` runs with early exit.

Usage::

    lerobot-a1-calibrate --policy.path=outputs/train/a1/checkpoints/last/pretrained_model \\
        --dataset.repo_id=local/mw --dataset.root=/data/mw --exit_dist=exp --exit_ratio=1.0 --num_samples=512

The discrepancies use the policy's inference settings (head, ``exit_interval``, ``exit_metric``,
``exit_discrepancy_dims``, and with flow matching ``exit_fm_steps`` / ``exit_warm_start`` /
``exit_warm_start_chain`` / ``expert_position_offset``, overridable with ``--policy.<field>=``); the thresholds are
only accepted by a policy with the same settings.
"""

# no `from __future__ import annotations`: lerobot.configs.parser.wrap reads the real type of `cfg`

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from lerobot.configs import parser
from lerobot.configs.default import DatasetConfig
from lerobot.configs.policies import PreTrainedConfig

from lerobot_vla_plugins.errors import ConfigError

if TYPE_CHECKING:
    from lerobot.datasets import LeRobotDataset
    from lerobot.processor import PolicyProcessorPipeline

    from .modeling_a1 import A1Policy

logger = logging.getLogger(__name__)


@dataclass
class CalibrateConfig:
    dataset: DatasetConfig
    policy: PreTrainedConfig | None = None
    # Exit budget family ("exp", "gauss", "gamma") and its parameter c (paper eq. 8, appendix eq. 11-12).
    exit_dist: str = "exp"
    exit_ratio: float = 1.0
    # Frames drawn (without replacement, seeded) from the dataset; all frames when the dataset is smaller.
    num_samples: int = 512
    batch_size: int = 8
    # No exit at the first exit point; default: on for 7B/8B-class backbones (> 5B language-model parameters),
    # as the released code does for '7b'/'8b' model names.
    disable_first_exit: bool | None = None
    seed: int = 1000
    # Where to store the calibration (default: the --policy.path directory).
    output_dir: Path | None = None
    rename_map: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        policy_path = parser.get_path_arg("policy")
        if policy_path:
            cli_overrides = parser.get_cli_overrides("policy") or []
            self.policy = PreTrainedConfig.from_pretrained(policy_path, cli_overrides=cli_overrides)
            self.policy.pretrained_path = Path(policy_path)
        if self.policy is None or self.policy.pretrained_path is None:
            raise ConfigError("lerobot-a1-calibrate: pass --policy.path=<A1 checkpoint directory or Hub id>")
        if self.policy.type != "a1":
            raise ConfigError(
                f"lerobot-a1-calibrate: --policy.path is a {self.policy.type!r} policy, not an A1 checkpoint"
            )
        from lerobot_vla_plugins.adaptive import check_exit_dist

        try:
            check_exit_dist(self.exit_dist, self.exit_ratio)
        except ValueError as err:
            raise ConfigError(f"lerobot-a1-calibrate: {err}") from None
        if self.num_samples < 1 or self.batch_size < 1:
            raise ValueError("lerobot-a1-calibrate: --num_samples and --batch_size must be >= 1")
        if self.output_dir is None:
            local = Path(str(self.policy.pretrained_path))
            if not local.is_dir():
                raise ValueError(
                    "lerobot-a1-calibrate: --policy.path is not a local directory; pass --output_dir"
                )
            self.output_dir = local

    @classmethod
    def __get_path_fields__(cls) -> list[str]:
        return ["policy"]


def check_dataset_features(
    policy_cfg: PreTrainedConfig, dataset_features: dict, rename_map: dict[str, str]
) -> None:
    """Refuse a dataset whose observation features differ from the ones the policy was trained with."""
    from lerobot.configs.types import FeatureType
    from lerobot.utils.feature_utils import dataset_to_policy_features

    feats = dataset_to_policy_features(dataset_features)
    feats = {rename_map.get(k, k): f for k, f in feats.items()}
    problems = []
    for key, ft in policy_cfg.input_features.items():
        if key not in feats:
            problems.append(f"{key} {tuple(ft.shape)} is missing")
        elif ft.type is FeatureType.VISUAL:
            if feats[key].shape[0] != ft.shape[0]:
                problems.append(f"{key} has {feats[key].shape[0]} channels, the policy expects {ft.shape[0]}")
        elif tuple(feats[key].shape) != tuple(ft.shape):
            problems.append(
                f"{key} has shape {tuple(feats[key].shape)}, the policy expects {tuple(ft.shape)}"
            )
    action = policy_cfg.output_features.get("action")
    if action is not None and "action" in feats and tuple(feats["action"].shape) != tuple(action.shape):
        problems.append(
            f"action has shape {tuple(feats['action'].shape)}, the policy expects {tuple(action.shape)}"
        )
    if problems:
        raise ValueError(
            "lerobot-a1-calibrate: the dataset does not have the features the policy was trained with: "
            + "; ".join(problems)
            + ". Calibrate on a dataset of the same robot and cameras (or map camera names with --rename_map)."
        )


def collect_discrepancies(
    policy: "A1Policy",
    preprocessor: "PolicyProcessorPipeline",
    dataset: "LeRobotDataset",
    num_samples: int,
    batch_size: int,
    seed: int,
) -> torch.Tensor:
    """The (K, N) discrepancy matrix of ``num_samples`` seeded frames of ``dataset``."""
    from torch.utils.data import DataLoader, Subset

    g = torch.Generator().manual_seed(seed)
    n = min(num_samples, len(dataset))
    indices = torch.randperm(len(dataset), generator=g)[:n].tolist()
    loader = DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False, num_workers=0)
    noise = torch.Generator(device=policy.config.device).manual_seed(seed)
    values = []
    policy.eval()
    with torch.no_grad():
        for batch in loader:
            batch = preprocessor(batch)
            res, _ = policy.model.predict_early_exit(batch, thresholds=None, generator=noise)
            values.append(res.discrepancies)
    return torch.cat(values, dim=1)


def calibrate(cfg: CalibrateConfig) -> Path:
    """Run the calibration described by ``cfg``; returns the path of the written ``exit_calibration.json``."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.policies.factory import make_pre_post_processors
    from safetensors.torch import save_file

    from lerobot_vla_plugins.adaptive import (
        ExitCalibration,
        assign_exits,
        calibrate_thresholds,
        exit_budget,
        exit_fractions,
    )

    from .modeling_a1 import CALIBRATION_FILE, DISCREPANCY_FILE, A1Policy

    torch.manual_seed(cfg.seed)
    dataset = LeRobotDataset(
        cfg.dataset.repo_id,
        root=cfg.dataset.root,
        episodes=cfg.dataset.episodes,
        revision=cfg.dataset.revision,
        video_backend=cfg.dataset.video_backend,
    )
    check_dataset_features(cfg.policy, dataset.meta.features, cfg.rename_map)
    policy = A1Policy.from_pretrained(cfg.policy.pretrained_path, config=cfg.policy, load_calibration=False)
    preprocessor, _ = make_pre_post_processors(
        policy_cfg=cfg.policy,
        pretrained_path=str(cfg.policy.pretrained_path),
        preprocessor_overrides={
            "device_processor": {"device": str(policy.config.device)},
            "rename_observations_processor": {"rename_map": cfg.rename_map},
        },
    )
    values = collect_discrepancies(policy, preprocessor, dataset, cfg.num_samples, cfg.batch_size, cfg.seed)
    disable_first = cfg.disable_first_exit
    if disable_first is None:
        lm_params = sum(p.numel() for p in policy.model.backbone.decoder.parameters())
        disable_first = lm_params > 5e9
    thresholds = calibrate_thresholds(values, cfg.exit_dist, cfg.exit_ratio, disable_first_exit=disable_first)
    m = policy.model
    calibration = ExitCalibration(
        exit_layers=m.exit_layers,
        thresholds=thresholds,
        num_layers=m.num_layers,
        metric=policy.config.exit_metric,
        exit_dist=cfg.exit_dist,
        exit_ratio=cfg.exit_ratio,
        disable_first_exit=disable_first,
        num_samples=int(values.shape[1]),
        settings=policy.calibration_settings(),
    )
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Write each file under a temporary name and rename it into place (never a half-written calibration).
    tmp_d = out / f".{DISCREPANCY_FILE}.tmp-{os.getpid()}"
    save_file({"values": values.contiguous(), "exit_layers": torch.tensor(m.exit_layers)}, str(tmp_d))
    tmp_d.replace(out / DISCREPANCY_FILE)
    tmp_c = out / f".{CALIBRATION_FILE}.tmp-{os.getpid()}"
    tmp_c.write_text(calibration.to_json())
    tmp_c.replace(out / CALIBRATION_FILE)

    target = exit_budget(len(m.exit_layers), cfg.exit_dist, cfg.exit_ratio, disable_first)
    observed = exit_fractions(assign_exits(values, thresholds), len(m.exit_layers))
    lines = [
        f"A1 exit calibration on {values.shape[1]} frames of {cfg.dataset.repo_id} ({cfg.exit_dist}, c={cfg.exit_ratio}):",
        f"{'exit layer':>10} {'threshold':>12} {'target':>8} {'observed':>9}",
    ]
    for layer, thr, p, o in zip(m.exit_layers, thresholds, target, observed, strict=True):
        lines.append(f"{layer:>10} {thr:>12.5g} {p:>8.3f} {o:>9.3f}")
    mean_layers = float(sum((layer + 1) * o for layer, o in zip(m.exit_layers, observed, strict=True)))
    lines.append(
        f"expected executed layers: {mean_layers:.2f} of {m.num_layers} ({mean_layers / m.num_layers:.1%})"
    )
    lines.append(f"wrote {out / CALIBRATION_FILE} and {out / DISCREPANCY_FILE}")
    print("\n".join(lines))
    return out / CALIBRATION_FILE


@parser.wrap()
def _calibrate_cli(cfg: CalibrateConfig) -> Path:
    return calibrate(cfg)


def main() -> int:
    from lerobot.utils.import_utils import register_third_party_plugins
    from lerobot.utils.utils import init_logging

    init_logging()
    register_third_party_plugins()
    try:
        _calibrate_cli()
    except Exception as err:  # draccus wraps config errors in ParsingError: report the root cause
        root = err
        while root.__cause__ is not None:
            root = root.__cause__
        if not isinstance(root, ValueError):
            raise
        print(f"lerobot-a1-calibrate: error: {root}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
