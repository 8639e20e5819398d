"""The demo behind ``./scripts/demo.sh`` (lerobot-vla-demo)."""

from __future__ import annotations

import json

import pytest
from lerobot_vla_tools.cli.demo import DemoConfig, parse_losses, plot_loss

# Lines as lerobot-train 0.6.1 logs them (step numbers are rounded: "1K").
LOG = """\
INFO 2026-11-21 06:50:58 ot_train.py:641 step:50 smpl:400 ep:5 epch:0.3 loss:1.250 grdn:1.595 lr:5.0e-05 updt_s:0.370 data_s:0.008
Training:  3%|   | 51/2000
INFO 2026-11-21 06:51:17 ot_train.py:641 step:100 smpl:800 ep:10 epch:0.6 loss:0.804 grdn:1.633 lr:1.0e-04 updt_s:0.304 data_s:0.012
INFO 2026-11-21 06:59:17 ot_train.py:641 step:1K smpl:8K ep:100 epch:6 loss:0.093 grdn:0.633 lr:3.0e-04 updt_s:0.301 data_s:0.010
"""


def test_losses_are_read_from_lerobot_train_log_lines():
    assert parse_losses(LOG, log_freq=50) == [(50, 1.25), (100, 0.804), (150, 0.093)]


def test_loss_curve_is_written_as_png(tmp_path):
    path = tmp_path / "loss.png"
    plot_loss([(50, 1.25), (100, 0.8), (150, 0.09)], path, "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_defaults_are_the_documented_embedded_run():
    cfg = DemoConfig()
    assert (cfg.policy, cfg.task) == ("evo1", "button-press-topdown-v3")
    assert cfg.eval_episodes >= 1 and cfg.steps >= 1000


def test_an_unknown_policy_is_a_clear_error(tmp_path):
    from lerobot_vla_tools.cli.demo import bench_case_recipe

    with pytest.raises(ValueError, match="no tiny bench case for 'nope'"):
        bench_case_recipe("nope", tmp_path)


@pytest.mark.slow
def test_demo_runs_end_to_end_at_reduced_size(tmp_path):
    from lerobot_vla_tools.testing import run_cli

    out = tmp_path / "demo"
    proc = run_cli(
        "lerobot-vla-demo",
        "--episodes=2",
        "--steps=20",
        "--eval_episodes=1",
        f"--output_dir={out}",
        timeout=3600,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["demonstrations"] == 2 and summary["eval_episodes"] == 1
    assert (out / "loss_curve.png").is_file()
    assert summary["per_task"][0]["videos"] and "overall success" in proc.stdout
