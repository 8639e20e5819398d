"""Importing a local LeRobot v2.1 dataset (the Evo-1 release format) as v3.0, offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from lerobot_vla_tools.data.v21 import ImportV21Config, import_v21

FPS = 10
H = W = 32
CAM = "observation.images.front"


def _frame(episode: int, t: int) -> np.ndarray:
    """A smooth, episode- and time-dependent RGB frame (compresses well, easy to recognise after decoding)."""
    y, x = np.mgrid[0:H, 0:W]
    r = (x * 8 + t * 5) % 256
    g = (y * 8 + episode * 60) % 256
    b = np.full_like(r, 40 + 20 * episode)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def _write_mp4(path: Path, frames: list[np.ndarray]) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "10", "g": "2"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _stats(x: np.ndarray) -> dict:
    return {
        "min": x.min(0).tolist(),
        "max": x.max(0).tolist(),
        "mean": x.mean(0).tolist(),
        "std": x.std(0).tolist(),
        "count": [len(x)],
    }


def write_v21_dataset(root: Path, episodes: int = 3, length: int = 12) -> dict:
    """Write a small LeRobot v2.1 dataset (state, action, one MP4 camera) the way v2.1 laid it out."""
    tasks = ["pick up the cube", "open the drawer"]
    features = {
        "observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
        "action": {"dtype": "float32", "shape": [2], "names": ["dx", "dy"]},
        CAM: {
            "dtype": "video",
            "shape": [H, W, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.fps": FPS,
                "video.height": H,
                "video.width": W,
                "video.channels": 3,
                "video.codec": "h264",
                "video.pix_fmt": "yuv420p",
                "video.is_depth_map": False,
                "has_audio": False,
            },
        },
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    info = {
        "codebase_version": "v2.1",
        "robot_type": "test_arm",
        "total_episodes": episodes,
        "total_frames": episodes * length,
        "total_tasks": len(tasks),
        "total_videos": episodes,
        "total_chunks": 1,
        "chunks_size": 1000,
        "fps": FPS,
        "splits": {"train": f"0:{episodes}"},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": features,
    }
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    (root / "meta" / "tasks.jsonl").write_text(
        "".join(json.dumps({"task_index": i, "task": t}) + "\n" for i, t in enumerate(tasks))
    )
    ep_lines, stat_lines = [], []
    for ep in range(episodes):
        task_index = ep % len(tasks)
        state = np.stack([np.arange(length) + 100 * ep, np.full(length, ep)], axis=1).astype(np.float32)
        action = np.diff(np.vstack([state, state[-1:]]), axis=0).astype(np.float32)
        frames = [_frame(ep, t) for t in range(length)]
        df = pd.DataFrame(
            {
                "observation.state": list(state),
                "action": list(action),
                "timestamp": np.arange(length, dtype=np.float32) / FPS,
                "frame_index": np.arange(length),
                "episode_index": np.full(length, ep),
                "index": np.arange(length) + ep * length,
                "task_index": np.full(length, task_index),
            }
        )
        path = root / f"data/chunk-000/episode_{ep:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(path)
        _write_mp4(root / f"videos/chunk-000/{CAM}/episode_{ep:06d}.mp4", frames)
        pixels = np.stack(frames).astype(np.float32) / 255.0  # (T, H, W, 3)
        img_stats = {
            k: np.asarray(v).reshape(3, 1, 1).tolist()
            for k, v in {
                "min": pixels.min((0, 1, 2)),
                "max": pixels.max((0, 1, 2)),
                "mean": pixels.mean((0, 1, 2)),
                "std": pixels.std((0, 1, 2)),
            }.items()
        }
        img_stats["count"] = [length]
        ep_lines.append(json.dumps({"episode_index": ep, "tasks": [tasks[task_index]], "length": length}))
        stat_lines.append(
            json.dumps(
                {
                    "episode_index": ep,
                    "stats": {
                        "observation.state": _stats(state),
                        "action": _stats(action),
                        CAM: img_stats,
                        "timestamp": _stats(df["timestamp"].to_numpy()[:, None]),
                        "frame_index": _stats(df["frame_index"].to_numpy()[:, None]),
                        "episode_index": _stats(df["episode_index"].to_numpy()[:, None]),
                        "index": _stats(df["index"].to_numpy()[:, None]),
                        "task_index": _stats(df["task_index"].to_numpy()[:, None]),
                    },
                }
            )
        )
    (root / "meta" / "episodes.jsonl").write_text("\n".join(ep_lines) + "\n")
    (root / "meta" / "episodes_stats.jsonl").write_text("\n".join(stat_lines) + "\n")
    return {"episodes": episodes, "length": length, "tasks": tasks}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    base = tmp_path_factory.mktemp("v21")
    src = base / "evo1_style_v21"
    spec = write_v21_dataset(src)
    before = _tree(src)
    out = import_v21(ImportV21Config(root=str(src), repo_id="local/evo1_style"))
    return src, out, spec, before


def test_import_writes_a_v30_dataset_next_to_the_source(converted):
    src, out, _, _ = converted
    assert out == src.parent / "evo1_style_v21_v30"
    assert json.loads((out / "meta" / "info.json").read_text())["codebase_version"] == "v3.0"
    assert (out / "meta" / "episodes").is_dir() and (out / "meta" / "tasks.parquet").is_file()


def test_import_leaves_the_source_untouched(converted):
    src, _, _, before = converted
    assert _tree(src) == before
    assert not (src.parent / "evo1_style_v21_old").exists()


def test_imported_dataset_loads_with_lerobot_and_keeps_every_frame(converted):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    _, out, spec, _ = converted
    ds = LeRobotDataset("local/evo1_style", root=out)
    assert ds.meta.total_episodes == spec["episodes"]
    assert len(ds) == spec["episodes"] * spec["length"]
    last = ds[len(ds) - 1]
    assert last["task"] == spec["tasks"][(spec["episodes"] - 1) % 2]
    # state of episode 2, frame 11 was (211, 2)
    assert torch.equal(last["observation.state"], torch.tensor([211.0, 2.0]))


def test_imported_video_frames_decode_to_the_written_images(converted):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    _, out, spec, _ = converted
    ds = LeRobotDataset("local/evo1_style", root=out)
    idx = spec["length"] + 7  # episode 1, frame 7: lives in the concatenated video file
    decoded = ds[idx][CAM]
    expected = torch.from_numpy(_frame(1, 7)).permute(2, 0, 1).float() / 255
    assert decoded.shape == (3, H, W)
    assert (decoded - expected).abs().mean() < 0.03


def test_importing_something_that_is_not_v21_says_what_it_found(tmp_path, converted):
    _, out, _, _ = converted
    with pytest.raises(ValueError, match="codebase version 'v3.0', not 'v2.1'.*already v3.0"):
        import_v21(ImportV21Config(root=str(out), output=str(tmp_path / "x")))
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "notes.txt").write_text("hi")
    with pytest.raises(
        ValueError, match=r"not a LeRobot dataset: no meta/info.json \(found \['notes.txt'\]\)"
    ):
        import_v21(ImportV21Config(root=str(tmp_path / "random")))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        import_v21(ImportV21Config(root=str(tmp_path / "missing")))


def test_import_refuses_an_existing_output(tmp_path, converted):
    src, out, _, _ = converted
    with pytest.raises(FileExistsError, match="already exists"):
        import_v21(ImportV21Config(root=str(src), output=str(out)))


def test_cli_import_prints_the_result(tmp_path, capsys):
    from lerobot_vla_tools.data.cli import main

    src = tmp_path / "ds_v21"
    write_v21_dataset(src, episodes=1, length=5)
    assert main(["import_v21", f"--root={src}", f"--output={tmp_path / 'out'}", "--repo_id=local/x"]) == 0
    assert "Converted to v3.0" in capsys.readouterr().out
