"""``lerobot-vla-evo1-recipe``: Evo-1's two stages (supplement Tables 1-2) as one command over LeRobot's ``evo1``.

Fast tests check the plan (the lerobot-train commands the recipe runs for each state of the output directory), the
official training precision (stage 2: float32 master weights, bfloat16 autocast on GPU) against the AdamW update
such weights receive, and the official augmentation against the official loader's torchvision transforms; the tiny
real run checks what the stages do to the weights: stage 1 leaves every VLM parameter unchanged, stage 2 starts
from stage 1's weights with a fresh optimizer and changes them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from lerobot_vla_tools.recipes.evo1_two_stage import TRAIN_MODULE, launcher, parse_args, plan, run
from lerobot_vla_tools.testing import run_cli
from safetensors.torch import load_file

DATASET = ["--dataset.repo_id=local/mw", "--dataset.root=/data/mw"]

# The core tests' tiny evo1 (tests/test_evo1_end_to_end.py), as lerobot-train options.
TINY = [
    "--policy.image_resolution=[32,32]",
    "--policy.embed_dim=64",
    "--policy.hidden_dim=128",
    "--policy.state_hidden_dim=128",
    "--policy.num_heads=4",
    "--policy.num_layers=2",
    "--policy.chunk_size=8",
    "--policy.n_action_steps=8",
    "--policy.vlm_num_layers=4",
    "--policy.vlm_dtype=float32",
    "--policy.use_flash_attn=false",
    "--policy.max_text_length=256",
    "--policy.num_inference_timesteps=4",
    "--policy.enable_gradient_checkpointing=false",
    "--policy.device=cpu",
    "--num_workers=0",
]


def _opts(args: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in args)


def _fake_run(run_dir, step: int):
    """A lerobot-train run directory whose last checkpoint is at ``step``."""
    state = run_dir / "checkpoints" / f"{step:06d}" / "training_state"
    state.mkdir(parents=True)
    (state / "training_step.json").write_text(json.dumps({"step": step}))
    (run_dir / "checkpoints" / "last").symlink_to(state.parent.name)


def test_defaults_are_the_supplements_meta_world_settings(tmp_path):
    s1, s2 = plan(parse_args([*DATASET, f"--output_dir={tmp_path}"]))
    one, two = _opts(s1.args), _opts(s2.args)
    # Table 1: lr 1e-5, batch 16, 10k + 65k steps, warm-up 1k, clip 1.0, weight decay 1e-3, log every 10
    for opts in (one, two):
        assert opts["--policy.optimizer_lr"] == "1e-05" and opts["--batch_size"] == "16"
        assert (
            opts["--policy.scheduler_warmup_steps"] == "1000"
            and opts["--policy.optimizer_grad_clip_norm"] == "1.0"
        )
        assert opts["--policy.optimizer_weight_decay"] == "0.001" and opts["--log_freq"] == "10"
        assert opts["--policy.dropout"] == "0.2" and opts["--dataset.image_transforms.enable"] == "true"
        assert opts["--dataset.repo_id"] == "local/mw" and opts["--dataset.root"] == "/data/mw"
        # the official loader's augmentation (--use_augmentation in the README recipes), one transform at 448 px
        assert json.loads(opts["--dataset.image_transforms.tfs"]) == {
            "evo1": {"weight": 1.0, "type": "Evo1Augmentation", "kwargs": {"size": 448, "p": 0.5}}
        }
        assert opts["--dataset.image_transforms.max_num_transforms"] == "1"
    assert (one["--steps"], two["--steps"]) == ("10000", "65000")
    # Table 2: horizon 50, state/action padded to 24, 448 px, 8 DiT layers (stage 2 inherits them from stage 1)
    assert (
        one["--policy.chunk_size"] == "50"
        and one["--policy.max_state_dim"] == one["--policy.max_action_dim"] == "24"
    )
    assert one["--policy.image_resolution"] == "[448,448]" and one["--policy.num_layers"] == "8"
    # stage 1: VLM frozen; stage 2: everything, from stage 1's weights, a new run (fresh optimizer, no --resume)
    assert one["--policy.type"] == "evo1" and one["--policy.training_stage"] == "stage1"
    assert two["--policy.training_stage"] == "stage2" and "--resume" not in two
    # stage 2 trains the VLM: float32 weights (the master copy), bf16 autocast on GPU; stage 1 keeps bf16 storage
    assert (two["--policy.vlm_dtype"], two["--policy.use_amp"]) == ("float32", "true")
    assert "--policy.vlm_dtype" not in one
    assert two["--policy.path"] == str(tmp_path / "stage1" / "checkpoints" / "last" / "pretrained_model")
    assert (one["--output_dir"], two["--output_dir"]) == (str(tmp_path / "stage1"), str(tmp_path / "stage2"))


def test_other_options_go_to_lerobot_train_and_stage_prefixes_pick_one_stage(tmp_path):
    cfg = parse_args(
        [
            *DATASET,
            f"--output_dir={tmp_path}",
            "--policy.chunk_size=8",
            "--policy.device=cuda",
            "--stage2.policy.push_to_hub=true",
            "--stage2.policy.repo_id=me/evo1",
            "--stage1_steps=5",
        ]
    )
    s1, s2 = plan(cfg)
    one, two = _opts(s1.args), _opts(s2.args)
    assert one["--policy.chunk_size"] == "8" and s1.args.count("--policy.chunk_size=8") == 1
    assert one["--policy.device"] == two["--policy.device"] == "cuda"
    assert one["--policy.push_to_hub"] == "false" and "--policy.repo_id" not in one
    assert two["--policy.push_to_hub"] == "true" and two["--policy.repo_id"] == "me/evo1"
    assert one["--steps"] == "5"


def test_options_the_recipe_sets_per_stage_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args([*DATASET, f"--output_dir={tmp_path}", "--steps=100"])
    assert "--steps is set by the recipe for each stage" in capsys.readouterr().err


def test_an_interrupted_stage_1_is_resumed_then_stage_2_starts(tmp_path):
    _fake_run(tmp_path / "stage1", 5000)
    s1, s2 = plan(parse_args([*DATASET, f"--output_dir={tmp_path}", "--policy.device=cpu"]))
    assert s1.action == "resume"
    assert _opts(s1.args) == {
        "--config_path": str(tmp_path / "stage1/checkpoints/last/pretrained_model/train_config.json"),
        "--resume": "true",
        "--steps": "10000",
        "--policy.device": "cpu",
    }
    assert s2.action == "train" and not s2.reset_dir


def test_a_finished_stage_1_is_skipped_and_stage_2_resumed_or_skipped(tmp_path):
    _fake_run(tmp_path / "stage1", 10000)
    _fake_run(tmp_path / "stage2", 20000)
    s1, s2 = plan(parse_args([*DATASET, f"--output_dir={tmp_path}"]))
    assert (s1.action, s2.action) == ("done", "resume")
    assert _opts(s2.args)["--steps"] == "65000"
    s1, s2 = plan(parse_args([*DATASET, f"--output_dir={tmp_path}", "--stage2_steps=20000"]))
    assert (s1.action, s2.action) == ("done", "done")


def test_a_stage_directory_without_checkpoint_is_started_again(tmp_path):
    (tmp_path / "stage1").mkdir()  # lerobot-train died before its first checkpoint
    (s1,) = plan(parse_args([*DATASET, f"--output_dir={tmp_path}", "--until_stage=1"]))
    assert s1.action == "train" and s1.reset_dir


def test_inconsistent_output_directories_are_refused(tmp_path):
    _fake_run(tmp_path / "stage1", 400)
    _fake_run(tmp_path / "stage2", 10)
    with pytest.raises(ValueError, match="stage 1 stopped at step 400 of 10000"):
        plan(parse_args([*DATASET, f"--output_dir={tmp_path}"]))
    with pytest.raises(ValueError, match="already at step 400 > --stage1_steps=100"):
        plan(parse_args([*DATASET, f"--output_dir={tmp_path}", "--stage1_steps=100"]))


# ---------------------------------------------------------------------------------------------- tiny real run


def _recipe(out, dataset, backbone, *extra):
    repo_id, root = dataset
    return run_cli(
        "lerobot-vla-evo1-recipe",
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        f"--output_dir={out}",
        "--batch_size=2",
        "--save_freq=1",
        "--log_freq=1",
        f"--policy.vlm_model_name={backbone}",
        *TINY,
        *extra,
        timeout=1800,
    )


@pytest.fixture(scope="module")
def two_stages(tmp_path_factory, metaworld_dataset, tiny_internvl):
    out = tmp_path_factory.mktemp("evo1_recipe") / "run"
    # No warm-up: the paper's 1k-step warm-up makes the first updates ~1e-8, below float32 resolution for the
    # RMSNorm weights (1.0), so "stage 2 changes every VLM parameter" could not be seen in 2 steps.
    proc = _recipe(
        out, metaworld_dataset, tiny_internvl, "--stage1_steps=2", "--stage2_steps=2", "--warmup_steps=0"
    )
    return out, proc.stdout


def _weights(out, stage: int, step: int) -> dict[str, torch.Tensor]:
    return load_file(
        out / f"stage{stage}" / "checkpoints" / f"{step:06d}" / "pretrained_model" / "model.safetensors"
    )


def _vlm(weights):
    return {k: v for k, v in weights.items() if k.startswith("model.embedder.")}


def test_stage_1_leaves_every_vlm_parameter_unchanged(two_stages, tiny_internvl):
    from transformers import AutoModel

    out, _ = two_stages
    base = AutoModel.from_pretrained(
        tiny_internvl
    ).state_dict()  # the backbone stage 1 started from (4 LM layers)
    vlm = _vlm(_weights(out, 1, 2))
    assert len(vlm) == len(base)
    for key, value in vlm.items():
        assert value.equal(base[key.removeprefix("model.embedder.model.")]), key
    head1, head2 = (_weights(out, 1, s) for s in (1, 2))
    assert any(not head1[k].equal(head2[k]) for k in head1 if k.startswith("model.action_head.")), (
        "the head trained"
    )


def test_stage_2_starts_from_stage_1_with_a_fresh_optimizer(two_stages):
    out, stdout = two_stages
    stage1, stage2 = _weights(out, 1, 2), _weights(out, 2, 1)
    # one Adam step at lr 1e-5 moves a weight by ~1e-5; a fresh initialisation would differ by ~1e-1
    head_shift = max(
        (stage2[k] - stage1[k]).abs().max().item() for k in stage1 if k.startswith("model.action_head.")
    )
    assert head_shift < 1e-4
    state = out / "stage2" / "checkpoints" / "last" / "training_state"
    assert json.loads((state / "training_step.json").read_text())["step"] == 2
    optimizer_steps = {
        v.item() for k, v in load_file(state / "optimizer_state.safetensors").items() if k.endswith("/step")
    }
    assert optimizer_steps == {2.0}, "stage 2's optimizer counts its own 2 steps, not stage 1's"
    cfg = json.loads(
        (out / "stage2" / "checkpoints" / "last" / "pretrained_model" / "config.json").read_text()
    )
    assert cfg["training_stage"] == "stage2" and cfg["finetune_vlm"] is True
    assert "--policy.path=" in stdout and "done: --policy.path=" in stdout


def test_stage_2_changes_every_vlm_parameter(two_stages):
    out, _ = two_stages
    before, after = _vlm(_weights(out, 1, 2)), _vlm(_weights(out, 2, 2))
    unchanged = [k for k in before if before[k].equal(after[k])]
    assert not unchanged, (
        f"{len(unchanged)} of {len(before)} VLM tensors did not change in stage 2: {unchanged[:5]}"
    )


@pytest.mark.slow
def test_running_the_command_again_resumes_either_stage(tmp_path, metaworld_dataset, tiny_internvl):
    out = tmp_path / "run"
    _recipe(out, metaworld_dataset, tiny_internvl, "--stage1_steps=1", "--until_stage=1")
    proc = _recipe(out, metaworld_dataset, tiny_internvl, "--stage1_steps=2", "--stage2_steps=1")
    assert (
        "stage 1 (VLM frozen): resume" in proc.stdout and "stage 2 (full fine-tuning): train" in proc.stdout
    )
    assert sorted(p.name for p in (out / "stage1" / "checkpoints").iterdir()) == ["000001", "000002", "last"]
    proc = _recipe(out, metaworld_dataset, tiny_internvl, "--stage1_steps=2", "--stage2_steps=2")
    assert (
        "stage 1 (VLM frozen): already done" in proc.stdout
        and "stage 2 (full fine-tuning): resume" in proc.stdout
    )
    assert (
        json.loads((out / "stage2/checkpoints/last/training_state/training_step.json").read_text())["step"]
        == 2
    )


def test_several_processes_run_each_stage_under_accelerate_launch(tmp_path):
    ran = []
    cfg = parse_args([*DATASET, f"--output_dir={tmp_path}", "--num_processes=8", "--stage1_steps=5"])
    assert (
        run(cfg, runner=lambda cmd: ran.append(cmd) or subprocess.CompletedProcess(cmd, 1)) == 1
    )  # stops at stage 1
    (cmd,) = ran
    assert Path(cmd[0]).name == "accelerate" and cmd[1:4] == ["launch", "--multi_gpu", "--num_processes=8"]
    assert cmd[4:6] == ["-m", TRAIN_MODULE]  # lerobot-train with the Evo-1 augmentation registered
    assert "--policy.training_stage=stage1" in cmd and "--batch_size=16" in cmd

    config = tmp_path / "fsdp.yaml"
    config.write_text("distributed_type: FSDP\n")
    cfg = parse_args(
        [*DATASET, f"--output_dir={tmp_path / 'b'}", f"--accelerate_config={config}", "--num_processes=2"]
    )
    assert launcher(cfg)[1:4] == ["launch", f"--config_file={config}", "--num_processes=2"]
    assert launcher(parse_args([*DATASET, f"--output_dir={tmp_path / 'c'}"]))[1:] == ["-m", TRAIN_MODULE]


def test_the_global_batch_is_stated_next_to_the_authors(tmp_path, capsys):
    cfg = parse_args([*DATASET, f"--output_dir={tmp_path}", "--dry_run=true"])
    assert run(cfg) == 0
    assert (
        "global batch 16 x 1 process(es) = 16 (the authors: 8 GPUs x 16 = 128); --num_processes=8 --batch_size=16"
        in capsys.readouterr().out
    )
    run(parse_args([*DATASET, f"--output_dir={tmp_path}", "--dry_run=true", "--num_processes=8"]))
    assert "= 128 (the authors: 8 GPUs x 16 = 128)\n" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["--num_processes=0", "--accelerate_config=/no/such.yaml"])
def test_bad_launch_options_are_refused(tmp_path, bad, capsys):
    with pytest.raises(SystemExit):
        parse_args([*DATASET, f"--output_dir={tmp_path}", bad])
    assert bad.split("=")[0] in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- stage-2 precision


def _value(text: str):
    """A command-line value as the config field it sets (JSON where it parses, else the string)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _stage2_policy(backbone, tmp_path, **override):
    """The tiny evo1 with the recipe's stage-2 options (precision included) applied to stage 1's model settings."""
    from lerobot.policies.evo1.modeling_evo1 import Evo1Policy
    from lerobot.policies.factory import make_policy_config

    from lerobot_vla_plugins.features import metaworld_policy_features

    _, s2 = plan(parse_args([*DATASET, f"--output_dir={tmp_path}"]))
    stage2 = {
        k.removeprefix("--policy."): v
        for k, v in _opts(s2.args).items()
        if k in ("--policy.training_stage", "--policy.vlm_dtype", "--policy.use_amp")
    }
    tiny = {
        k.removeprefix("--policy."): _value(v) for k, v in _opts(TINY).items() if k.startswith("--policy.")
    }
    tiny.pop("vlm_dtype")  # the recipe's stage-2 precision, not the tiny runs' explicit float32
    fields = {**tiny, **stage2, "use_amp": stage2["use_amp"] == "true", **override}
    fields["image_resolution"] = tuple(fields["image_resolution"])
    cfg = make_policy_config("evo1", vlm_model_name=str(backbone), **fields)
    cfg.input_features, cfg.output_features = metaworld_policy_features()
    torch.manual_seed(0)
    return Evo1Policy(cfg)


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_stage_2_keeps_float32_vlm_weights_and_asks_for_bf16_autocast_on_cuda(
    tiny_internvl, tmp_path, monkeypatch
):
    from lerobot.policies.evo1.modeling_evo1 import Evo1Policy

    policy = _stage2_policy(tiny_internvl, tmp_path)
    vlm = dict(policy.model.embedder.named_parameters())
    assert vlm and {p.dtype for p in vlm.values()} == {torch.float32}
    assert all(p.requires_grad for p in vlm.values()), "stage 2 trains the whole VLM"
    assert policy.config.use_amp and policy._maybe_autocast().__class__.__name__ == "nullcontext"  # CPU: none
    monkeypatch.setattr(Evo1Policy, "_device", property(lambda self: torch.device("cuda")))
    ctx = policy._maybe_autocast()  # what the forward opens on a GPU
    assert isinstance(ctx, torch.autocast) and (ctx.device, ctx.fast_dtype) == ("cuda", torch.bfloat16)


def _one_adamw_step(policy) -> tuple[dict, dict, dict]:
    """One training step of LeRobot's evo1 optimizer preset (AdamW) on a tiny batch: (before, grads, after) of the
    VLM parameters."""
    cfg = policy.config
    optimizer = cfg.get_optimizer_preset().build(policy.get_optim_params())
    g = torch.Generator().manual_seed(1)
    batch = {
        "observation.image": torch.randint(0, 256, (2, 3, 32, 32), generator=g).float() / 255,
        "observation.state": torch.rand(2, 4, generator=g) * 2 - 1,
        "action": torch.rand(2, cfg.chunk_size, 4, generator=g) * 2 - 1,
        "task": ["push the button", "open the drawer"],
    }
    policy.train()
    vlm = dict(policy.model.embedder.named_parameters())
    before = {k: p.detach().clone() for k, p in vlm.items()}
    torch.manual_seed(3)
    loss, _ = policy.forward(batch)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in vlm.items()}
    optimizer.step()
    return before, grads, {k: p.detach().clone() for k, p in vlm.items()}


def test_a_stage_2_step_moves_every_vlm_weight_as_float32_master_weights_do(tiny_internvl, tmp_path):
    """AdamW's first step is w <- w (1 - lr wd) - lr g / (|g| + eps) (m_hat = g, v_hat = g^2): about 1e-5 per weight
    at lr 1e-5. Float32 weights take it; bfloat16 weights of magnitude ~0.02 (spacing ~1e-4) mostly round it away,
    which is what LeRobot's default vlm_dtype=bfloat16 does to stage 2."""
    policy = _stage2_policy(tiny_internvl, tmp_path)
    lr, eps = policy.config.optimizer_lr, policy.config.optimizer_eps
    decay = {id(p) for p in policy.get_optim_params()[0]["params"]}
    names = {id(p): k for k, p in policy.model.embedder.named_parameters()}
    wd = {names[i]: policy.config.optimizer_weight_decay if i in decay else 0.0 for i in names}
    before, grads, after = _one_adamw_step(policy)
    moved, total = 0, 0
    for k, w in before.items():
        w64, g64 = w.double(), grads[k].double()
        expected = w64 * (1 - lr * wd[k]) - lr * g64 / (g64.abs() + eps)
        torch.testing.assert_close(
            after[k].double(), expected, rtol=0, atol=4e-7 * float(w64.abs().max()) + 1e-9
        )
        live = g64 != 0
        moved += int((after[k] != w)[live].sum())
        total += int(live.sum())
    assert moved / total > 0.99, f"float32: {moved} of {total} weights with a gradient changed"

    bf16 = _stage2_policy(tiny_internvl, tmp_path, vlm_dtype="bfloat16")
    before, grads, after = _one_adamw_step(bf16)
    changed = sum(int((after[k] != before[k])[grads[k] != 0].sum()) for k in before)
    live = sum(int((grads[k] != 0).sum()) for k in before)
    assert changed / live < 0.5, f"bfloat16 storage kept {changed} of {live} updates"


# ---------------------------------------------------------------------------------------------- augmentation


def _official_transforms(size):
    """The official loader's two image paths (Evo_1/dataset/lerobot_dataset_pretrain_mp.py, --use_augmentation)."""
    import torchvision.transforms as T  # noqa: N812
    from torchvision.transforms.functional import InterpolationMode

    basic = T.Compose([T.Resize((size, size), interpolation=InterpolationMode.BICUBIC), T.ToTensor()])
    aug = T.Compose(
        [
            T.RandomResizedCrop(size, scale=(0.95, 1.0), interpolation=InterpolationMode.BICUBIC),
            T.RandomRotation(degrees=(-5, 5), interpolation=InterpolationMode.BICUBIC),
            T.ColorJitter(brightness=0.3, contrast=0.4, saturation=0.5, hue=0.08),
            T.ToTensor(),
        ]
    )
    return basic, aug


def test_the_official_augmentation_is_the_official_loaders_image_path():
    """Half the frames augmented (crop 0.95-1, +-5 degrees, jitter 0.3/0.4/0.5/0.08), half only resized, every frame
    448 x 448, each exactly what the official transforms give for the same random draws."""
    from lerobot_vla_tools.recipes.evo1_augmentation import Evo1Augmentation
    from PIL import Image

    transform = Evo1Augmentation(size=64)
    basic, aug = _official_transforms(64)
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (40, 3, 48, 60), generator=g, dtype=torch.uint8)
    augmented = 0
    for i, frame in enumerate(frames):
        torch.manual_seed(i)
        got = transform(frame.float() / 255)
        torch.manual_seed(i)
        coin = torch.rand(
            ()
        )  # the official coin is python's random.random() < 0.5; here torch's, drawn first
        pil = Image.fromarray(frame.permute(1, 2, 0).numpy())
        expected = (aug if coin < 0.5 else basic)(pil)
        augmented += int(coin < 0.5)
        assert got.shape == (3, 64, 64)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert 10 <= augmented <= 30, f"{augmented} of 40 frames augmented (p = 0.5)"


def test_lerobot_builds_the_recipes_augmentation_once_registered(tmp_path):
    import draccus
    from lerobot.configs.default import DatasetConfig
    from lerobot.transforms.transforms import ImageTransforms
    from lerobot_vla_tools.recipes.evo1_augmentation import Evo1Augmentation, register_evo1_augmentation

    s1, _ = plan(parse_args([*DATASET, f"--output_dir={tmp_path}", "--policy.image_resolution=[32,32]"]))
    options = [a.removeprefix("--dataset.") for a in s1.args if a.startswith("--dataset.image_transforms")]
    cfg = draccus.parse(DatasetConfig, args=["--repo_id=local/mw", *[f"--{o}" for o in options]])
    register_evo1_augmentation()
    transforms = ImageTransforms(cfg.image_transforms)
    (built,) = transforms.transforms.values()
    assert isinstance(built, Evo1Augmentation) and built.p == 0.5
    assert transforms(torch.rand(3, 48, 48)).shape == (3, 32, 32)  # the policy's resolution
