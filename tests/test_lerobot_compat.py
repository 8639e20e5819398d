"""Our policies under both LeRobot APIs: the installed 0.6.1 and the development branch's (0.6.2), whose callers
are reproduced here as LeRobot ``main`` at commit 7427f31801f944f5ec9ce53cda02862ce7d1638b has them (quoted).

``scripts/test_lerobot_next.sh`` runs this file against a real 0.6.2 install; there the reproductions are not
needed and the tests of the installed API exercise 0.6.2 itself.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lerobot.policies.pretrained import PreTrainedPolicy
from lerobot.utils.hub import HubMixin
from lerobot_vla_tools.speed import iter_cases
from lerobot_vla_tools.speed.worker import build_policy
from safetensors.torch import load_file

from lerobot_vla_plugins import compat

REPO = Path(__file__).resolve().parents[1]
#: the policies that extend _save_pretrained, and what each writes next to LeRobot's files
CASES = {"a1": "a1 (tiny, flow matching)@tiny", "vla_adapter": "vla_adapter (pro, tiny)@tiny"}
EXTRA_FILES = {"a1": "exit_calibration.json", "vla_adapter": "vlm/prismatic_config.json"}


@pytest.fixture(scope="module", params=sorted(CASES))
def policy(request, tmp_path_factory):
    (case,) = [c for c in iter_cases() if c.key == CASES[request.param]]
    scratch = tmp_path_factory.mktemp(request.param)
    spec = {
        "case": case.key,
        "policy_type": case.policy_type,
        "size": case.size,
        "overrides": case.resolve_overrides(scratch),
        "features": case.features,
        "device": "cpu",
    }
    policy = build_policy(spec)[0]
    if request.param == "a1":
        from lerobot_policy_a1.modeling_a1 import CALIBRATION_FILE

        from lerobot_vla_plugins.adaptive import ExitCalibration

        assert EXTRA_FILES["a1"] == CALIBRATION_FILE
        m = policy.model
        thresholds = [0.1] * (len(m.exit_layers) - 1) + [float("inf")]
        calibration = ExitCalibration(
            m.exit_layers, thresholds, m.num_layers, policy.config.exit_metric, "exp", 1.0, False, 8, {}
        )
        policy.calibration = calibration  # written next to the weights by A1's _save_pretrained
    return policy


def _released_062_save_pretrained(self, save_directory: Path) -> None:
    """PreTrainedPolicy._save_pretrained of LeRobot 0.6.2 (src/lerobot/policies/pretrained.py), single process:

    model_to_save = self.module if hasattr(self, "module") else self
    state_dict = full_model_state_dict(model_to_save)  # collective when sharded; {} off-main
    if not state_dict or not is_main_process():
        return
    self.config._save_pretrained(save_directory)
    save_torch_state_dict(state_dict, str(save_directory), max_shard_size=_SINGLE_FILE_SHARD_SIZE)

    (full_model_state_dict of an unsharded module is its state_dict(); the shard size is "1000GB".)
    """
    from huggingface_hub import save_torch_state_dict

    model_to_save = self.module if hasattr(self, "module") else self
    state_dict = model_to_save.state_dict()
    if not state_dict or not compat.is_main_process():
        return
    self.config._save_pretrained(save_directory)
    save_torch_state_dict(state_dict, str(save_directory), max_shard_size="1000GB")


def _assert_checkpoint(policy, directory: Path, expected: dict[str, torch.Tensor]) -> None:
    assert (directory / "config.json").is_file()
    assert (directory / EXTRA_FILES[policy.name]).is_file()
    saved = load_file(directory / "model.safetensors")
    assert set(expected) <= set(saved) and set(saved) <= set(policy.state_dict())
    for name, tensor in expected.items():
        assert torch.equal(saved[name], tensor), name


def test_the_installed_caller_saves_our_files(policy, tmp_path):
    # LeRobot's own entry point, whatever the installed version (0.6.1 here; 0.6.2 in test_lerobot_next.sh)
    policy.save_pretrained(tmp_path)
    _assert_checkpoint(
        policy, tmp_path, {k: v for k, v in policy.state_dict().items() if k in _saved(tmp_path)}
    )


def _saved(directory: Path) -> set[str]:
    return set(load_file(directory / "model.safetensors"))


@pytest.mark.skipif(not compat.save_takes_state_dict(), reason="LeRobot 0.6.1's state_dict convention")
def test_the_0_6_1_caller_writes_the_gathered_state_dict_it_passes(policy, tmp_path):
    # lerobot-train 0.6.1 under FSDP: policy.save_pretrained(pretrained_dir, state_dict=model_state_dict)
    gathered = {k: torch.full_like(v, 0.5) for k, v in policy.state_dict().items()}
    policy.save_pretrained(tmp_path, state_dict=gathered)
    _assert_checkpoint(policy, tmp_path, {k: gathered[k] for k in _saved(tmp_path)})


def test_the_0_6_2_caller_saves_through_the_0_6_2_base(policy, tmp_path, monkeypatch):
    if compat.save_takes_state_dict():
        monkeypatch.setattr(PreTrainedPolicy, "_save_pretrained", _released_062_save_pretrained)
    assert not compat.save_takes_state_dict()
    # the 0.6.2 base refuses what our overrides used to pass it
    with pytest.raises(TypeError, match="state_dict"):
        PreTrainedPolicy._save_pretrained(policy, tmp_path / "old", state_dict=None)
    # HubMixin.save_pretrained of 0.6.2 (src/lerobot/utils/hub.py), the caller of every save there
    # (PreTrainedPolicy no longer overrides it):
    #     save_directory = Path(save_directory)
    #     save_directory.mkdir(parents=True, exist_ok=True)
    #     # save object (weights, files, etc.)
    #     self._save_pretrained(save_directory)
    HubMixin.save_pretrained(policy, tmp_path)
    _assert_checkpoint(
        policy, tmp_path, {k: v for k, v in policy.state_dict().items() if k in _saved(tmp_path)}
    )
    assert _saved(tmp_path)  # the weights were written
    # a caller that still hands a gathered state dict gets it written under 0.6.2 too
    gathered = {k: torch.full_like(v, 0.25) for k, v in policy.state_dict().items()}
    (tmp_path / "gathered").mkdir()
    policy._save_pretrained(tmp_path / "gathered", state_dict=gathered)
    _assert_checkpoint(policy, tmp_path / "gathered", {k: gathered[k] for k in _saved(tmp_path / "gathered")})


def _released_062_set_fsdp_wrap_modules(accelerator, policy) -> None:
    """lerobot.distributed.factory.set_fsdp_wrap_modules of LeRobot 0.6.2 (the error text shortened)."""
    plugin = getattr(accelerator.state, "fsdp_plugin", None)
    if plugin is None or plugin.min_num_params:
        return
    if plugin.transformer_cls_names_to_wrap:  # user override, set at build time
        return
    declared = getattr(type(policy), "_fsdp_wrap_modules", None)
    if not declared:
        raise ValueError(f"Policy '{type(policy).__name__}' declares no FSDP wrap units.")
    plugin.transformer_cls_names_to_wrap = list(declared)


def test_fsdp_wrap_units_resolve_under_dp_shard_as_under_the_shipped_accelerate_config(policy):
    from lerobot_vla_tools.training.accelerate import config_path

    plugin = SimpleNamespace(min_num_params=0, transformer_cls_names_to_wrap=None)
    _released_062_set_fsdp_wrap_modules(SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin)), policy)
    shipped = re.search(r"fsdp_transformer_layer_cls_to_wrap: (\S+)", config_path("fsdp_7b").read_text())
    assert plugin.transformer_cls_names_to_wrap == shipped.group(1).split(",")
    # accelerate refuses a name that no module of the policy has: each must wrap real layers
    classes = [type(m).__name__ for m in policy.modules()]
    for name in plugin.transformer_cls_names_to_wrap:
        assert classes.count(name) >= 2, (name, sorted(set(classes)))


def test_vita_vla_declares_wrap_units_its_llm_has(tmp_path):
    # vita_vla keeps LeRobot's _save_pretrained, but shards like the others under --parallelism.dp_shard
    (case,) = [c for c in iter_cases() if c.policy_type == "vita_vla" and c.size == "tiny"]
    spec = {
        "case": case.key,
        "policy_type": case.policy_type,
        "size": case.size,
        "overrides": case.resolve_overrides(tmp_path),
        "features": case.features,
        "device": "cpu",
    }
    vita = build_policy(spec)[0]
    plugin = SimpleNamespace(min_num_params=0, transformer_cls_names_to_wrap=None)
    _released_062_set_fsdp_wrap_modules(SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin)), vita)
    classes = [type(m).__name__ for m in vita.modules()]
    assert plugin.transformer_cls_names_to_wrap == ["Qwen2DecoderLayer"]
    assert classes.count("Qwen2DecoderLayer") >= 2, sorted(set(classes))


def test_publish_policy_calls_the_api_of_the_installed_lerobot(monkeypatch):
    import lerobot.common.train_utils as train_utils

    calls = []
    fake_policy = SimpleNamespace(
        config=SimpleNamespace(repo_id="user/p"),
        push_model_to_hub=lambda cfg, peft_model=None, dataset_meta=None: calls.append(("push_model", cfg)),
    )
    processor = SimpleNamespace(push_to_hub=lambda repo_id: calls.append(("processor", repo_id)))
    if not hasattr(train_utils, "publish_trained_model"):  # 0.6.1: the policy's method, then the processors
        compat.publish_policy("cfg", fake_policy, processor, processor, None)
        assert calls == [("push_model", "cfg"), ("processor", "user/p"), ("processor", "user/p")]
        calls.clear()
    # 0.6.2: publish_trained_model(cfg, model, preprocessor, postprocessor, dataset_meta, *, peft_model=None)
    monkeypatch.setattr(
        train_utils,
        "publish_trained_model",
        lambda cfg, model, pre, post, meta, *, peft_model=None: calls.append(("publish", cfg, pre, post)),
        raising=False,
    )
    compat.publish_policy("cfg", fake_policy, processor, processor, None)
    assert calls == [("publish", "cfg", processor, processor)]


def _requirements() -> dict[str, list[str]]:
    """pyproject.toml -> its requirement strings on LeRobot itself."""
    found = {}
    for pyproject in sorted(REPO.glob("**/pyproject.toml")):
        if ".venv" in pyproject.parts:
            continue
        deps = tomllib.loads(pyproject.read_text()).get("project", {}).get("dependencies", [])
        on_lerobot = [d for d in deps if re.match(r"lerobot(\[|[<>=!~ ]|$)", d)]
        if on_lerobot:
            found[str(pyproject.relative_to(REPO))] = on_lerobot
    return found


def test_every_pyproject_pins_the_tested_lerobot_range_and_the_installed_version_is_in_it():
    from importlib.metadata import version

    from packaging.requirements import Requirement
    from packaging.version import Version

    requirements = _requirements()
    assert "pyproject.toml" in requirements
    for path, reqs in requirements.items():
        for req in reqs:
            assert str(Requirement(req).specifier) == str(
                Requirement(f"lerobot{compat.LEROBOT_REQUIREMENT}").specifier
            ), (path, req)
    spec = Requirement(f"lerobot{compat.LEROBOT_REQUIREMENT}").specifier
    assert Version(version("lerobot")) in spec
    # the range holds exactly the two APIs compat supports: 0.6.1 and the 0.6.2 development branch
    assert Version("0.6.1") in spec and Version("0.6.2") in spec
    assert Version("0.6.0") not in spec and Version("0.6.3") not in spec
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    (locked,) = [p["version"] for p in lock["package"] if p["name"] == "lerobot"]
    assert Version(locked) in spec


def test_the_accelerate_config_tool_points_0_6_2_users_to_dp_shard(monkeypatch, capsys):
    from lerobot_vla_tools.training import accelerate

    monkeypatch.setattr(compat, "accelerate_env_refused", lambda: True)
    assert accelerate.main(["fsdp_7b"]) == 0
    out = capsys.readouterr()
    assert out.out.strip().endswith("fsdp_7b.yaml")
    assert "--parallelism.dp_shard" in out.err and "ACCELERATE_USE_FSDP" in out.err
