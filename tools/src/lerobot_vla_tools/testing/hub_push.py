"""Exercise ``PreTrainedPolicy.push_model_to_hub`` offline: the Hub client and the model-card validation (a web
request) are replaced, and what would have been uploaded is captured for the test to check."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING
from unittest import mock

if TYPE_CHECKING:
    from lerobot.policies.pretrained import PreTrainedPolicy


@dataclass
class CapturedPush:
    """What one ``push_model_to_hub`` call would have sent."""

    repo_id: str = ""
    private: bool | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    allow_patterns: list[str] = field(default_factory=list)

    @property
    def readme(self) -> str:
        return self.files.get("README.md", b"").decode()


def push_policy_offline(
    policy: PreTrainedPolicy, dataset_repo_id: str = "local/dataset", repo_id: str = "user/policy"
) -> CapturedPush:
    """Run ``policy.push_model_to_hub`` with a fake ``HfApi``; returns the captured upload."""
    from lerobot.configs.default import DatasetConfig
    from lerobot.configs.train import TrainPipelineConfig

    captured = CapturedPush()

    class FakeApi:
        def create_repo(self, repo_id, private=None, exist_ok=False, **_):
            captured.repo_id, captured.private = repo_id, private
            return SimpleNamespace(repo_id=repo_id)

        def upload_folder(self, repo_id, folder_path, allow_patterns=None, **_):
            root = Path(folder_path)
            captured.files = {
                str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()
            }
            captured.allow_patterns = list(allow_patterns or [])
            return SimpleNamespace(repo_url=SimpleNamespace(url=f"https://huggingface.co/{repo_id}"))

    policy.config.repo_id = repo_id
    cfg = TrainPipelineConfig(dataset=DatasetConfig(repo_id=dataset_repo_id), policy=policy.config)
    with (
        mock.patch("lerobot.policies.pretrained.HfApi", FakeApi),
        mock.patch("huggingface_hub.ModelCard.validate"),
    ):
        policy.push_model_to_hub(cfg)
    return captured
