"""Dataset quantiles over all frames (``data/quantiles.py``) in place of LeRobot's per-episode average."""

import json

import numpy as np
import pytest
from lerobot_vla_tools.data.quantiles import exact_quantile_stats


@pytest.fixture
def two_task_dataset(tmp_path):
    """Two 10-frame episodes whose gripper command is constant within an episode: +1 in the first, -1 in the
    second (as Meta-World's expert does per task); the first action value ramps 0..0.9 in both."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        "observation.state": {"dtype": "float32", "shape": (2,), "names": ["x", "g"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["dx", "grip"]},
    }
    root = tmp_path / "ds"
    dataset = LeRobotDataset.create(
        repo_id="local/two", fps=10, features=features, root=root, use_videos=False
    )
    for grip, task in ((1.0, "press"), (-1.0, "open")):
        for i in range(10):
            value = np.array([i / 10, grip], dtype=np.float32)
            dataset.add_frame({"observation.state": value, "action": value, "task": task})
        dataset.save_episode()
    dataset.finalize()
    return root


def test_lerobots_per_episode_quantiles_collapse_and_the_exact_ones_do_not(two_task_dataset):
    stats_path = two_task_dataset / "meta" / "stats.json"
    lerobot = json.loads(stats_path.read_text())["action"]
    # LeRobot: mean of the episodes' q01 (+1 and -1) and of their q99 (+1 and -1): both 0, a zero-width range
    assert lerobot["q01"][1] == pytest.approx(0.0, abs=1e-6) and lerobot["q99"][1] == pytest.approx(
        0.0, abs=1e-6
    )

    assert exact_quantile_stats(two_task_dataset) == ["observation.state", "action", "timestamp"]
    stats = json.loads(stats_path.read_text())["action"]
    # 20 frames, ten at -1 and ten at +1: numpy's linear quantile at 0.01 is -1 and at 0.99 is +1
    assert stats["q01"][1] == -1.0 and stats["q99"][1] == 1.0 and stats["q50"][1] == 0.0
    # the ramp 0, 0.1, ..., 0.9 twice, sorted 0, 0, 0.1, 0.1, ...: q10 sits at position 0.1 * 19 = 1.9, between
    # the second value (0) and the third (0.1): 0 + 0.9 * 0.1 = 0.09
    assert stats["q10"][0] == pytest.approx(0.09, abs=1e-6)
    # the other statistics are LeRobot's, untouched
    assert (stats["min"], stats["max"], stats["mean"]) == (lerobot["min"], lerobot["max"], lerobot["mean"])


def test_lerobot_reads_the_rewritten_quantiles(two_task_dataset):
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    exact_quantile_stats(two_task_dataset)
    meta = LeRobotDatasetMetadata("local/two", root=two_task_dataset)
    assert meta.stats["action"]["q01"].tolist() == pytest.approx([0.0, -1.0])
    assert meta.stats["action"]["q99"].tolist() == pytest.approx([0.9, 1.0], abs=0.01)


def test_a_directory_without_frames_is_refused(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text(json.dumps({"features": {}}))
    (tmp_path / "meta" / "stats.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no data/\\*/\\*.parquet files"):
        exact_quantile_stats(tmp_path)
