#!/usr/bin/env bash
# Evo-1 on SO-100 with LeRobot's so100_follower and evo1: record teleoperated demos with two cameras, train, roll out.
# SIM=1 runs record/rollout against LeRobot's SO follower with the Feetech bus and cameras simulated (no hardware;
# the SO-100 leader is not simulated, so SIM=1 skips recording: pass DATASET of an existing dataset).
set -euo pipefail
DATASET=${DATASET:?set DATASET=<user>/so100_dataset}
FOLLOWER=${FOLLOWER:-/dev/ttyACM0}
LEADER=${LEADER:-/dev/ttyACM1}
CAMERAS='{image_1: {type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30}, image_2: {type: opencv, index_or_path: 2, width: 640, height: 480, fps: 30}}'
ROLLOUT=(lerobot-rollout)
[ "${SIM:-0}" = "1" ] && ROLLOUT=(python -m lerobot_vla_tools.testing.so100 lerobot-rollout)

if [ "${SIM:-0}" != "1" ]; then
  lerobot-record --robot.type=so100_follower --robot.port="$FOLLOWER" --robot.id=my_so100 --robot.cameras="$CAMERAS" \
    --teleop.type=so100_leader --teleop.port="$LEADER" --teleop.id=my_leader \
    --dataset.repo_id="$DATASET" --dataset.single_task="pick up the cube" --dataset.num_episodes=50 --dataset.fps=30 \
    --dataset.push_to_hub=false
fi
lerobot-train --policy.type=evo1 --dataset.repo_id="$DATASET" --policy.push_to_hub=false --output_dir=outputs/evo1_so100 "$@"
"${ROLLOUT[@]}" \
  --policy.path=outputs/evo1_so100/checkpoints/last/pretrained_model --robot.type=so100_follower \
  --robot.port="$FOLLOWER" --robot.id=my_so100 --robot.max_relative_target=10 --robot.cameras="$CAMERAS" \
  --fps=30 --task="pick up the cube" --duration=60
