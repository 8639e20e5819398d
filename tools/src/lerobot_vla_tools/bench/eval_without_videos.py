"""``lerobot-eval`` with its episode videos switched off: ``python -m lerobot_vla_tools.bench.eval_without_videos
<lerobot-eval flags>``.

LeRobot 0.6 always renders the first 10 episodes of every task into MP4 videos unless it records a dataset
(``eval_main``: ``max_episodes_rendered = 0 if cfg.eval.recording else 10``) and has no flag to turn them off. On
a CPU that doubles the rendering of those episodes (one extra 480x480 render per step for the video, on top of the
observation's), and rendering is what a Meta-World episode spends its time on. This entry point runs LeRobot's
own ``lerobot-eval`` unchanged except that ``eval_policy_all`` is called with ``max_episodes_rendered=0`` and no
video directory; the episodes, seeds, metrics and ``eval_info.json`` are LeRobot's (its ``video_paths`` lists are
empty).
"""

from __future__ import annotations

import functools


def main() -> None:
    from lerobot.scripts import lerobot_eval

    render_videos = lerobot_eval.eval_policy_all

    @functools.wraps(render_videos)
    def without_videos(*args, **kwargs):
        kwargs.update(max_episodes_rendered=0, videos_dir=None)
        return render_videos(*args, **kwargs)

    lerobot_eval.eval_policy_all = without_videos  # looked up by eval_main at call time
    lerobot_eval.main()


if __name__ == "__main__":
    main()
