"""ONNX chunk graphs (``lerobot_vla_tools.export``): parity with eager within 1e-4 on the tiny bench cases.

Each case is the policy's ``lerobot-vla-speed`` tiny case (random weights, Meta-World features: one 480x480 camera,
4-D state), preprocessed by its own pipeline; flow-matching graphs take the noise as an input, so eager and
onnxruntime integrate the same Euler path and must agree to float32 rounding.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")

TOL = 1e-4
CASES = {
    "vla_adapter": "vla_adapter (pro, tiny)@tiny",
    "seer": "seer@tiny",
    "a1": "a1 (tiny, flow matching)@tiny",
    "vita_vla": "vita_vla@tiny",
    "a1_internvl": "a1 (evo1 backbone)@tiny",
}


def build(name: str, scratch: Path):
    """(policy, preprocessor) of the tiny bench case ``CASES[name]``."""
    from lerobot_vla_tools.speed import iter_cases
    from lerobot_vla_tools.speed.worker import build_policy

    (case,) = [c for c in iter_cases() if c.key == CASES[name]]
    spec = {
        "policy_type": case.policy_type,
        "overrides": case.resolve_overrides(scratch),
        "features": case.features,
        "device": "cpu",
        "size": case.size,
        "case": case.key,
    }
    policy, pre, _, _ = build_policy(spec)
    return policy.eval(), pre


def example(policy, pre, seed: int, task: str = "Press a button from the top") -> dict:
    from lerobot_vla_tools.export.cli import example_batch

    return example_batch(policy, pre, 1, task, seed=seed)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``{name: (policy, preprocessor, runner)}`` of ``CASES``, exported on first use."""
    from lerobot_vla_tools.export import OnnxChunkRunner, export_chunk_graph

    root = tmp_path_factory.mktemp("export")
    done: dict = {}

    def get(name: str):
        if name not in done:
            policy, pre = build(name, root / "scratch")
            path = root / f"{name}.onnx"
            export_chunk_graph(policy, example(policy, pre, seed=0), path)
            done[name] = (policy, pre, OnnxChunkRunner(path))
        return done[name]

    return get


@pytest.mark.parametrize(
    "name",
    [
        "vla_adapter",
        "seer",
        "vita_vla",
        pytest.param("a1", marks=pytest.mark.slow),
        pytest.param("a1_internvl", marks=pytest.mark.slow),
    ],
)
def test_onnx_chunk_matches_eager_on_an_observation_it_was_not_traced_on(name, exported):
    from lerobot_vla_tools.export import parity

    policy, pre, runner = exported(name)
    batch = example(policy, pre, seed=3)  # other images and state than the traced example
    diff = parity(policy, batch, runner)
    assert diff <= TOL, f"{name}: max |eager - onnx| = {diff:.2e}"
    chunk, ref = runner(batch), policy.predict_action_chunk(batch)
    assert chunk.shape == ref.shape and chunk.shape[-1] == 4  # (B, T, A): Meta-World's 4-D action
    assert torch.isfinite(chunk).all()


@pytest.mark.slow
def test_flow_matching_graph_follows_its_noise_input(exported):
    """Two noises give two chunks (the noise is a real input, not a traced constant); the same noise, one."""
    from lerobot_vla_tools.export import make_noise

    policy, pre, runner = exported("a1")
    batch = example(policy, pre, seed=4)
    n1, n2 = make_noise(policy, 1, seed=1), make_noise(policy, 1, seed=2)
    assert torch.equal(runner(batch, n1), runner(batch, n1))
    assert float((runner(batch, n1) - runner(batch, n2)).abs().max()) > 1e-3


def test_runner_refuses_a_prompt_the_graph_was_not_exported_for(exported):
    policy, pre, runner = exported("vla_adapter")
    with pytest.raises(ValueError, match="exported for the task 'Press a button from the top'.*export again"):
        runner.feeds(example(policy, pre, seed=0, task="open the drawer"))


def test_runner_refuses_another_batch_size_naming_the_input(exported):
    from lerobot_vla_tools.export.cli import example_batch

    policy, pre, runner = exported("vla_adapter")
    batch = example_batch(policy, pre, 2, "Press a button from the top")
    with pytest.raises(ValueError, match=r"observation\.\w+ has shape \[2, .*exported for \[1, "):
        runner.feeds(batch)


def test_policies_without_a_chunk_graph_say_why():
    from lerobot_vla_tools.export import check_exportable

    with pytest.raises(
        ValueError,
        match="evo1: no ONNX export .*noise.*exported policy types: a1, seer, vita_vla, vla_adapter",
    ):
        check_exportable("evo1")


def test_export_command_writes_the_graph_and_its_parity(tmp_path):
    import json

    from lerobot.policies.factory import make_pre_post_processors
    from lerobot_vla_tools.speed.worker import synthetic_stats
    from lerobot_vla_tools.testing.fixtures import run_cli
    from lerobot_vla_tools.testing.robot_policy import save_checkpoint

    policy, _ = build("seer", tmp_path / "scratch")
    stats = synthetic_stats(policy.config.input_features, policy.config.output_features)
    ckpt = save_checkpoint(
        tmp_path / "ckpt", policy, *make_pre_post_processors(policy.config, dataset_stats=stats)
    )
    out = tmp_path / "out" / "seer.onnx"
    proc = run_cli("lerobot-vla-export", f"--policy_path={ckpt}", f"--output={out}", timeout=600)
    assert "within 0.0001" in proc.stdout
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["policy_type"] == "seer" and info["parity_max_abs_diff"] <= TOL
    assert info["input_names"] == ["observation.image", "observation.state"]


def test_export_command_refuses_a_directory_without_a_checkpoint(tmp_path):
    from lerobot_vla_tools.export.cli import main

    assert main([f"--policy_path={tmp_path}"]) == 2


def test_speed_bench_adds_an_onnx_row_after_each_exportable_eager_row():
    from lerobot_vla_tools.speed.harness import BenchSettings, select_cases

    keys = [c.key for c in select_cases(BenchSettings(sizes=["tiny"], onnx=True))]
    for name in (
        "vla_adapter (pro, tiny)",
        "seer",
        "a1 (tiny, flow matching)",
        "a1 (evo1 backbone)",
        "vita_vla",
    ):
        assert keys[keys.index(f"{name}@tiny") + 1] == f"{name} + onnx@tiny"
    assert "evo1 + onnx@tiny" not in keys  # no chunk graph (NOT_EXPORTED)
