"""Check, before any episode runs, that a checkpoint's inputs are what an env feeds it.

LeRobot itself only compares camera sets loosely (either may be a subset of the other) and discovers a wrong
state size deep inside the first rollout. ``lerobot-vla-bench`` checks every input the checkpoint declares
against what the env provides after LeRobot's env processing and ``--rename_map``, and says which key is missing
and which rename would fix it.
"""

from __future__ import annotations

import json
from pathlib import Path

from .base import ProtocolError


def read_policy_config(policy_path: str) -> dict:
    """The checkpoint's ``config.json`` (a local ``pretrained_model`` directory, or a Hub id in the local cache).

    Raises:
        ProtocolError: no config.json could be read.
    """
    local = Path(policy_path).expanduser()
    if local.is_dir():
        path = local / "config.json"
        if not path.is_file():
            raise ProtocolError(
                f"--policy.path: {local} has no config.json; pass the checkpoint's pretrained_model directory "
                "(e.g. outputs/train/<run>/checkpoints/last/pretrained_model)"
            )
        return json.loads(path.read_text())
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(policy_path, "config.json")).read_text())
    except Exception as err:  # noqa: BLE001 - any Hub failure means the same thing here
        raise ProtocolError(
            f"--policy.path: {policy_path!r} is neither a local checkpoint directory nor a readable Hub model ({err})"
        ) from err


def env_policy_features(env_args: dict) -> dict:
    """What the policy receives from an env: LeRobot's ``env_to_policy_features`` passed through the env's own
    preprocessor (e.g. LIBERO's, which builds the 8-D ``observation.state``). Action excluded.

    Args:
        env_args: ``--env.<field>`` values including ``type``.

    Returns:
        ``{policy_key: PolicyFeature}`` (image shapes channel-first).
    """
    from lerobot.configs import FeatureType
    from lerobot.envs.utils import env_to_policy_features

    cfg = _env_config(env_args)
    feats = {k: f for k, f in env_to_policy_features(cfg).items() if f.type is not FeatureType.ACTION}
    pre, _ = cfg.get_env_processors()
    grouped: dict = {}
    for key, feat in feats.items():
        grouped.setdefault(feat.type, {})[key] = feat
    out = {}
    for group in pre.transform_features(grouped).values():
        out.update(group)
    return out


def env_action_dim(env_args: dict) -> int:
    from lerobot.utils.constants import ACTION

    return int(_env_config(env_args).features[ACTION].shape[0])


def _env_config(env_args: dict):
    """LeRobot's config of ``--env.type`` with the other ``--env.*`` values (errors name the flag)."""
    from lerobot.envs.factory import make_env_config

    fields = {k: v for k, v in env_args.items() if k != "type"}
    try:
        return make_env_config(env_args["type"], **fields)
    except TypeError as err:
        raise ProtocolError(
            f"--env.*: {err} (a flag that --env.type={env_args['type']} does not have?)"
        ) from err
    except ValueError as err:
        raise ProtocolError(f"--env.type={env_args['type']}: {err}") from err


def _fmt_shape(shape) -> str:
    return str(tuple(shape))


def check_policy_inputs(
    policy_cfg: dict,
    env_features: dict,
    rename_map: dict[str, str],
    env_label: str,
    action_dim: int | None = None,
    policy_label: str = "the checkpoint",
) -> None:
    """Raise if the env (after ``rename_map``) does not provide every input the checkpoint was trained with.

    Checks: each visual input key is provided (LeRobot's evo1 ``empty_camera_*`` slots excepted); state and
    environment-state inputs are provided with the same shape; the action size matches (``action_dim``), unless
    the policy crops its output (``postprocess_action_dim``).

    Raises:
        ProtocolError: the first mismatch, naming the key, what the env has, and the ``--rename_map`` that would
            connect them.
    """
    provided = {rename_map.get(k, k): f for k, f in env_features.items()}
    inputs = policy_cfg.get("input_features") or {}
    missing = [k for k, f in inputs.items() if k not in provided and ".empty_camera_" not in k]
    if missing:
        unused = [k for k in env_features if rename_map.get(k, k) not in inputs]
        missing_visual = [k for k in missing if inputs[k]["type"] == "VISUAL"]
        unused_visual = [k for k in unused if getattr(env_features[k].type, "name", "") == "VISUAL"]
        hint = ""
        if missing_visual and len(unused_visual) >= len(missing_visual):
            suggestion = dict(zip(unused_visual, missing_visual, strict=False))
            hint = (
                f" Map the env's cameras onto the checkpoint's with --rename_map='{json.dumps(suggestion)}'."
            )
        elif missing_visual:
            hint = ' Pass --rename_map=\'{"<env key>": "<checkpoint key>"}\' to map a camera.'
        raise ProtocolError(
            f"{policy_label} expects input {missing[0]!r}"
            + (f" (and {', '.join(repr(m) for m in missing[1:])})" if len(missing) > 1 else "")
            + f" but {env_label} provides {', '.join(sorted(provided)) or 'nothing'}."
            + hint
        )
    for key, feat in inputs.items():
        if feat["type"] in ("STATE", "ENV") and key in provided:
            want, have = tuple(feat["shape"]), tuple(provided[key].shape)
            if want != have:
                raise ProtocolError(
                    f"{key}: {policy_label} was trained with shape {_fmt_shape(want)} but {env_label} provides "
                    f"{_fmt_shape(have)}; evaluate it on the benchmark it was trained for (or retrain on data with this "
                    "env's state layout)"
                )
    if action_dim is not None and not policy_cfg.get("postprocess_action_dim"):
        out = (policy_cfg.get("output_features") or {}).get("action")
        if out is not None and int(out["shape"][0]) != action_dim:
            raise ProtocolError(
                f"action: {policy_label} predicts {out['shape'][0]}-D actions but {env_label} takes {action_dim}-D actions"
            )
