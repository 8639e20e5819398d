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


# What `lerobot-vla-data metaworld` printed for 2 episodes here (LeRobot 0.6.1, SVT-AV1 3.0, stdout + stderr),
# shortened: tqdm redraws after "\r", the encoder's banner per episode, libav's info line, the summary.
RECORDED = (
    "Meta-World demos:   0%|          | 0/2 [00:00<?, ?ep/s]"
    "\rMeta-World demos:  50%|#####     | 1/2 [00:30<00:30, 30.09s/ep, expert_success=1/1]\n"
    "Svt[info]: -------------------------------------------\n"
    "Svt[info]: SVT [version]:\tSVT-AV1 Encoder Lib v3.0.0\n"
    "Svt[info]: SVT [config]: preset / tune / pred struct \t\t\t\t\t: 10 / PSNR / random access\n"
    "Svt[info]: Svt[info]: -------------------------------------------\n"
    "Svt[warn]: Failed to set thread priority: Invalid argument\n"
    "[mp4 @ 0x5635e47959c0] Starting second pass: moving the moov atom to the beginning of the file\n"
    "\rMeta-World demos: 100%|##########| 2/2 [00:49<00:00, 23.54s/ep, expert_success=2/2]\n"
    "| button-press-topdown-v3 | easy | 2 | 2/2 (100%) | 134 |\n"
    "Wrote 2 episodes (134 frames) to /tmp/d1\n"
)


def test_demo_output_hides_encoder_lines_and_keeps_progress_bars_and_summary(tmp_path, capsys):
    import sys

    from lerobot_vla_tools.cli.demo import _run

    script = (
        tmp_path / "record.py"
    )  # a file: the command line, which the demo echoes, must not carry the text
    script.write_text(f"import sys\nsys.stdout.write({RECORDED!r})\n")
    _run([sys.executable, str(script)], tmp_path / "data.log", {})
    shown = capsys.readouterr().out
    assert "Svt[" not in shown and "[mp4 @" not in shown
    # the bar redraws in place: its updates keep their "\r", not one printed line each
    assert "Meta-World demos:   0%|          | 0/2 [00:00<?, ?ep/s]\rMeta-World demos:  50%" in shown
    assert "Meta-World demos: 100%|##########| 2/2" in shown
    assert "| button-press-topdown-v3 | easy | 2 | 2/2 (100%) | 134 |\n" in shown
    assert "Wrote 2 episodes (134 frames)" in shown
    assert (tmp_path / "data.log").read_bytes().decode() == RECORDED  # the log keeps everything


def _encode_with_svt(env: dict) -> str:
    """stderr of a process that encodes 3 frames with libsvtav1 through PyAV (LeRobot's video encoder path)."""
    import os
    import subprocess
    import sys

    script = (
        "import av, numpy as np, sys\n"
        "c = av.open(sys.argv[1], 'w'); s = c.add_stream('libsvtav1', rate=10)\n"
        "s.width = s.height = 64; s.pix_fmt = 'yuv420p'\n"
        "for _ in range(3):\n"
        "    [c.mux(p) for p in s.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8)))]\n"
        "[c.mux(p) for p in s.encode()]; c.close()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(env.pop("_out"))],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_the_demo_silences_the_svt_av1_encoder_at_its_source(tmp_path):
    import av
    from lerobot_vla_tools.cli.demo import QUIET_ENCODER_ENV

    if "libsvtav1" not in av.codecs_available:
        pytest.skip("this PyAV build has no libsvtav1")
    loud = _encode_with_svt({"SVT_LOG": "3", "_out": tmp_path / "a.mp4"})
    assert "Svt[info]" in loud  # the banner LeRobot's default encoder prints per video
    quiet = _encode_with_svt({**QUIET_ENCODER_ENV, "_out": tmp_path / "b.mp4"})
    assert "Svt[" not in quiet
    assert (tmp_path / "b.mp4").stat().st_size > 0
