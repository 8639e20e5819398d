"""Run a protocol: one ``lerobot-eval`` process per unit, resumable, with progress; then the report.

Layout of ``--output_dir``::

    units/<unit key>/           lerobot-eval's --output_dir for that unit: eval_info.json, videos/, eval.log
    units/<unit key>/unit.json  written last, when the unit finished: the exact lerobot-eval arguments, wall time
    table.md table.csv chart.png results.json per_unit.csv

A unit counts as done only when its ``unit.json`` exists and its ``eval_info.json`` reads; a rerun with the same
settings skips done units and restarts unfinished ones from scratch. A rerun whose arguments for a done unit
differ (another checkpoint, preset or trial count) is refused rather than mixed into one table.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .base import Protocol, ProtocolError, ResultTable, Unit, UnitResult, check_trials_and_seeds
from .features import check_policy_inputs, env_action_dim, env_policy_features, read_policy_config
from .report import to_markdown, write_atomic, write_report

#: Where a run writes its progress lines (``print`` by default).
Log = Callable[[str], object]

# --env fields a protocol sets per unit; choose them with --tasks / --trials instead.
_PROTOCOL_ENV_FIELDS = ("type", "task", "task_ids", "first_chain")


@dataclass
class BenchConfig:
    """Flags of ``lerobot-vla-bench`` (every ``--policy.*``, ``--env.*``, ``--eval.*`` and ``--rename_map`` flag
    is passed on to each ``lerobot-eval`` run; ``--policy.path`` is required)."""

    # metaworld | libero | robotwin | calvin
    protocol: str = ""
    # Where units, logs, the table and the chart go. Rerunning with the same directory resumes.
    output_dir: str = ""
    # Subset (default: the whole protocol). metaworld: groups and/or tasks (easy,reach); libero: suites with optional
    # task ids (libero_goal:0-4,libero_10); robotwin: tasks, task:easy|hard, or easy|hard; calvin: the split (ABC_D).
    tasks: str | None = None
    # Episodes per task and seed (CALVIN: number of chains). Default: the paper's.
    trials: int | None = None
    # One run per seed; the table reports their mean and standard deviation. Default: the paper's.
    seeds: list[int] | None = None
    # Paper settings for the policy: auto (the Evo-1 preset for evo1 checkpoints), evo1, or none.
    preset: str = "auto"
    # CALVIN: chains per lerobot-eval run (the unit of resuming).
    chains_per_unit: int = 100
    # The command that evaluates one unit (split like a shell command line).
    lerobot_eval: str = "lerobot-eval"
    # Only aggregate the units already finished in --output_dir and write the report.
    report_only: bool = False
    # Print the lerobot-eval command of every unit and stop.
    dry_run: bool = False
    # Stream lerobot-eval's output (it always goes to each unit's eval.log).
    verbose: bool = False


@dataclass
class PlannedUnit:
    unit: Unit
    args: list[str]  # lerobot-eval arguments, output dir excluded
    directory: Path


@dataclass
class RunSummary:
    table: ResultTable
    paths: dict[str, Path]
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


def split_passthrough(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Separate LeRobot flags (``--policy.*``, ``--env.*``, ``--eval.*``, ``--rename_map``) from bench flags.

    Returns:
        (bench argv, {"policy.path": "...", "env.dataset_path": "...", ...}).

    Raises:
        ProtocolError: a LeRobot flag without ``=value``.
    """
    bench, passthrough = [], {}
    for arg in argv:
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") else ""
        if name.startswith(("policy.", "env.", "eval.")) or name == "rename_map":
            if "=" not in arg:
                raise ProtocolError(f"{arg}: write LeRobot flags as --{name}=<value>")
            passthrough[name] = arg.split("=", 1)[1]
        else:
            bench.append(arg)
    return bench, passthrough


def finished_unit(directory: Path) -> dict | None:
    """The ``unit.json`` record of a finished unit directory (it and a readable ``eval_info.json``), else None."""
    record_path = directory / "unit.json"
    if not record_path.is_file() or not (directory / "eval_info.json").is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
        UnitResult.from_eval_info(directory / "eval_info.json")
    except (ValueError, OSError):
        return None
    return record


def resolve_command(spec: str, flag: str) -> list[str]:
    """Split a command line (``lerobot-eval``, ``python -m ...``); a bare program name is taken from this
    environment's ``bin`` directory when it is there.

    Raises:
        ProtocolError: empty, or the program is not found (the message names ``flag``).
    """
    parts = shlex.split(spec)
    if not parts:
        raise ProtocolError(f"{flag} is empty")
    if os.sep not in parts[0]:
        local = Path(sys.executable).parent / parts[0]
        if local.exists():
            parts[0] = str(local)
        elif shutil.which(parts[0]) is None:
            raise ProtocolError(f"{flag}: {parts[0]!r} not found (is LeRobot installed in this environment?)")
    return parts


def run_logged(command: list[str], log_path: Path, verbose: bool = False, env: dict | None = None) -> int:
    """Run ``command`` with its output going to ``log_path`` (and, when ``verbose``, to stdout, indented).

    Returns:
        its exit code. Ctrl-C (or any exception) terminates the process before it propagates.
    """
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE if verbose else log,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        try:
            if verbose:
                for line in proc.stdout:
                    log.write(line)
                    sys.stdout.write(f"    {line}")
            return proc.wait()
        except BaseException:
            proc.terminate()
            proc.wait()
            raise


def checkpoint_name(policy_path: str) -> str:
    """Short label of a checkpoint: ``<run>@<step>`` for lerobot-train's ``<run>/checkpoints/<step>/pretrained_model``."""
    path = Path(policy_path)
    if path.name == "pretrained_model":
        path = path.parent
    return f"{path.parent.parent.name}@{path.name}" if path.parent.name == "checkpoints" else path.name


def _flag_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_flag_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _parse_user_value(text: str):
    """A passthrough value as a Python value where it is one (for merging and checks); else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"true": True, "false": False}.get(text.lower(), text)


class BenchRun:
    """Plan, run and report one protocol over one checkpoint."""

    def __init__(
        self, protocol: Protocol, cfg: BenchConfig, passthrough: dict[str, str], env: dict | None = None
    ):
        """``env``: the environment of the ``lerobot-eval`` processes (None: this process's)."""
        self.protocol = protocol
        self.cfg = cfg
        self.env = env
        if not cfg.output_dir:
            raise ProtocolError("--output_dir is required (rerun with the same directory to resume)")
        self.out = Path(cfg.output_dir).expanduser().absolute()
        policy_path = passthrough.get("policy.path")
        if not policy_path:
            raise ProtocolError(
                "--policy.path is required: the checkpoint to evaluate (a pretrained_model directory)"
            )
        local = Path(policy_path).expanduser()
        self.policy_path = str(local.absolute()) if local.exists() else policy_path
        self.user_policy = {
            k[7:]: v for k, v in passthrough.items() if k.startswith("policy.") and k != "policy.path"
        }
        self.user_env = {k[4:]: v for k, v in passthrough.items() if k.startswith("env.")}
        self.user_eval = {k[5:]: v for k, v in passthrough.items() if k.startswith("eval.")}
        clash = [f"--env.{k}" for k in self.user_env if k in _PROTOCOL_ENV_FIELDS]
        if clash:
            raise ProtocolError(
                f"{', '.join(clash)}: the protocol sets these per unit; choose tasks with --tasks"
            )
        if "n_episodes" in self.user_eval:
            raise ProtocolError("--eval.n_episodes: the protocol sets it per unit; use --trials")
        self.user_rename = None
        if "rename_map" in passthrough:
            value = _parse_user_value(passthrough["rename_map"])
            if not isinstance(value, dict):
                raise ProtocolError(f"--rename_map must be a JSON object, got {passthrough['rename_map']!r}")
            self.user_rename = value
        self.trials = cfg.trials if cfg.trials is not None else protocol.default_trials
        self.seeds = list(cfg.seeds) if cfg.seeds is not None else list(protocol.default_seeds)
        check_trials_and_seeds(self.trials, self.seeds)
        self.units = protocol.units(cfg.tasks, self.trials, self.seeds)
        if not self.units:
            raise ProtocolError("--tasks selected no task")
        self.policy_cfg = read_policy_config(self.policy_path)
        self.policy_type = self.policy_cfg.get("type", "?")
        self.preset_name = self._choose_preset()

    # -- planning --------------------------------------------------------------------------------------------
    def _choose_preset(self) -> str | None:
        mode = self.cfg.preset
        if mode not in ("auto", "evo1", "none"):
            raise ProtocolError(f"--preset must be auto, evo1 or none, got {mode!r}")
        if mode == "none" or self.protocol.preset_benchmark is None:
            if mode == "evo1":
                raise ProtocolError(
                    f"--preset=evo1: Evo-1 reports no {self.protocol.name} setting; use --preset=none"
                )
            return None
        if mode == "evo1" and self.policy_type != "evo1":
            raise ProtocolError(
                f"--preset=evo1 sets evo1 fields, but the checkpoint is a {self.policy_type!r} policy"
            )
        return "evo1" if self.policy_type == "evo1" else None

    def _preset(self, unit: Unit):
        if self.preset_name != "evo1":
            return None
        from lerobot_vla_tools.recipes.evo1_presets import evo1_preset

        return evo1_preset(self.protocol.preset_benchmark, unit.preset_suite)

    def _policy_views(self) -> list[str]:
        inputs = self.policy_cfg.get("input_features") or {}
        return [k for k, f in inputs.items() if f.get("type") == "VISUAL"]

    def unit_settings(self, unit: Unit) -> tuple[dict, dict, dict, dict]:
        """(policy flags, env flags, eval flags, rename map) of a unit: preset, then the user's flags."""
        preset = self._preset(unit)
        policy = dict(preset.policy_flags) if preset else {}
        policy.update({k: _parse_user_value(v) for k, v in self.user_policy.items()})
        env = dict(unit.env)
        if preset:
            env.update(preset.env_flags)
        env.update({k: _parse_user_value(v) for k, v in self.user_env.items()})
        evals = {"batch_size": 1, "use_async_envs": False}
        evals.update({k: _parse_user_value(v) for k, v in self.user_eval.items()})
        rename = (
            self.user_rename
            if self.user_rename is not None
            else (preset.rename_map(self._policy_views()) if preset else {})
        )
        chunk = self.policy_cfg.get("chunk_size")
        steps = policy.get("n_action_steps")
        if preset and chunk is not None and steps is not None and int(steps) > int(chunk):
            raise ProtocolError(
                f"the Evo-1 {self.protocol.name} preset executes {steps} actions per query but this checkpoint predicts "
                f"chunks of {chunk} (chunk_size); pass --policy.n_action_steps=<= {chunk}"
            )
        return policy, env, evals, rename

    def plan(self) -> list[PlannedUnit]:
        planned = []
        for unit in self.units:
            policy, env, evals, rename = self.unit_settings(unit)
            args = [f"--policy.path={self.policy_path}"]
            args += [f"--policy.{k}={_flag_value(v)}" for k, v in policy.items()]
            args += [f"--env.{k}={_flag_value(v)}" for k, v in env.items()]
            args += [f"--eval.n_episodes={unit.n_episodes}"]
            args += [f"--eval.{k}={_flag_value(v)}" for k, v in evals.items()]
            args += [f"--seed={unit.seed}", f"--job_name=bench_{self.protocol.name}"]
            if rename:
                args.append(f"--rename_map={json.dumps(rename)}")
            planned.append(PlannedUnit(unit, args, self.out / "units" / unit.key))
        return planned

    def preflight(self, planned: list[PlannedUnit]) -> None:
        """Check the checkpoint against every distinct env of the plan (features and action size)."""
        seen = set()
        for p in planned:
            policy, env, _, rename = self.unit_settings(p.unit)
            key = json.dumps([policy, env, rename], sort_keys=True, default=str)
            if key in seen:
                continue
            seen.add(key)
            label = f"--env.type={env['type']}" + (f" ({env['task']})" if "task" in env else "")
            check_policy_inputs(
                {**self.policy_cfg, **policy},  # e.g. a postprocess_action_dim the preset sets
                env_policy_features(env),
                rename,
                env_label=label,
                action_dim=env_action_dim(env),
                policy_label=f"the {self.policy_type} checkpoint",
            )

    # -- running ---------------------------------------------------------------------------------------------
    def _command(self) -> list[str]:
        return resolve_command(self.cfg.lerobot_eval, "--lerobot_eval")

    @staticmethod
    def _done_record(p: PlannedUnit) -> dict | None:
        return finished_unit(p.directory)

    def _check_same_settings(self, p: PlannedUnit, record: dict) -> None:
        if record.get("args") != p.args:
            old, new = record.get("args", []), p.args
            diff = next(
                ((a, b) for a, b in zip(old, new, strict=False) if a != b),
                (old[len(new) :] or ["-"], new[len(old) :] or ["-"]),
            )
            raise ProtocolError(
                f"{self.out} already holds unit {p.unit.key} run with other settings ({diff[0]} now {diff[1]}); "
                "use another --output_dir, or delete that directory to start over"
            )

    def _run_unit(self, command: list[str], p: PlannedUnit) -> float:
        if p.directory.exists():
            shutil.rmtree(p.directory)  # an unfinished attempt: start it again from scratch
        p.directory.mkdir(parents=True)
        log_path = p.directory / "eval.log"
        start = time.monotonic()
        rc = run_logged(
            [*command, *p.args, f"--output_dir={p.directory}"],
            log_path,
            verbose=self.cfg.verbose,
            env=self.env,
        )
        wall = time.monotonic() - start
        if rc != 0 or not (p.directory / "eval_info.json").is_file():
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
            raise RuntimeError(
                f"lerobot-eval failed for unit {p.unit.key} (exit {rc}); finished units are kept, rerun to resume.\n"
                f"log: {log_path}\n--- last lines ---\n{tail}"
            )
        record = {
            "unit": asdict(p.unit),
            "args": p.args,
            "wall_s": wall,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        write_atomic(p.directory / "unit.json", json.dumps(record, indent=2).encode())
        return wall

    def run(self, log: Log = print) -> RunSummary | None:
        planned = self.plan()
        records = {p.unit.key: self._done_record(p) for p in planned}
        for p in planned:
            if records[p.unit.key] is not None:
                self._check_same_settings(p, records[p.unit.key])
        todo = [p for p in planned if records[p.unit.key] is None]
        episodes = sum(p.unit.n_episodes for p in planned)
        preset = f", {self.preset_name} preset" if self.preset_name else ""
        log(
            f"[bench] {self.protocol.name}: {len(planned)} units, {episodes} episodes, {self.policy_type} checkpoint"
            f"{preset}; {len(planned) - len(todo)} done earlier, {len(todo)} to run -> {self.out}"
        )
        if self.cfg.dry_run:
            command = shlex.join(shlex.split(self.cfg.lerobot_eval))
            for p in planned:
                log(f"{command} {shlex.join(p.args)} --output_dir={p.directory}")
            return None
        self.preflight(planned)
        ran: list[str] = []
        if not self.cfg.report_only and todo:
            command = self._command()
            durations: list[float] = []
            for i, p in enumerate(planned, 1):
                tag = f"[{i}/{len(planned)}] {p.unit.key}"
                if records[p.unit.key] is not None:
                    rate = UnitResult.from_eval_info(p.directory / "eval_info.json").success_rate
                    log(f"{tag}: done earlier ({100 * rate:.1f}% success), skipped")
                    continue
                log(f"{tag}: running {p.unit.n_episodes} episodes (log: {p.directory / 'eval.log'})")
                wall = self._run_unit(command, p)
                durations.append(wall)
                ran.append(p.unit.key)
                result = UnitResult.from_eval_info(p.directory / "eval_info.json")
                left = len(todo) - len(durations)
                eta = f", about {left * sum(durations) / len(durations) / 60:.1f} min left" if left else ""
                log(
                    f"{tag}: {sum(result.successes)}/{len(result.successes)} successes in {wall:.0f} s"
                    f" [{len(durations)}/{len(todo)} run{eta}]"
                )
        return self.report(planned, ran, log)

    # -- reporting -------------------------------------------------------------------------------------------
    def report(self, planned: list[PlannedUnit], ran: list[str], log: Log = print) -> RunSummary:
        results = {}
        for p in planned:
            if self._done_record(p) is not None:
                results[p.unit.key] = UnitResult.from_eval_info(p.directory / "eval_info.json")
        if not results:
            raise ProtocolError(f"no finished unit in {self.out}; run without --report_only first")
        table = self.protocol.table([p.unit for p in planned], results)
        table.ours_label = f"{self.policy_type} ({checkpoint_name(self.policy_path)})" + (
            f" + {self.preset_name} preset" if self.preset_name else ""
        )
        missing = len(planned) - len(results)
        if missing:
            table.notes.append(f"Incomplete: {missing} of {len(planned)} units have not run yet.")
        trials_word = "chains" if self.protocol.name == "calvin" else "trials per task and seed"
        table.notes.append(
            f"{trials_word.capitalize()}: {self.trials}; seeds: {self.seeds}; each unit of per_unit.csv is one lerobot-eval run."
        )
        if self.preset_name:
            preset = self._preset(planned[0].unit)
            table.notes.extend(f"Differs from the official Evo-1 client: {d}." for d in preset.differences)
        settings = {
            "protocol": self.protocol.name,
            "policy_path": self.policy_path,
            "policy_type": self.policy_type,
            "preset": self.preset_name,
            "tasks": self.cfg.tasks,
            "trials": self.trials,
            "seeds": self.seeds,
            "units": len(planned),
            "units_done": len(results),
            "example_args": planned[0].args,
        }
        paths = write_report(table, self.out, settings)
        per_unit = io.StringIO()
        writer = csv.writer(per_unit)
        writer.writerow(
            [
                "unit",
                *sorted({k for p in planned for k in p.unit.labels}),
                "episodes",
                "successes",
                "sum_rewards",
                "eval_s",
            ]
        )
        label_keys = sorted({k for p in planned for k in p.unit.labels})
        for p in planned:
            if p.unit.key in results:
                r = results[p.unit.key]
                writer.writerow(
                    [
                        p.unit.key,
                        *[p.unit.labels.get(k, "") for k in label_keys],
                        len(r.successes),
                        sum(r.successes),
                        sum(r.sum_rewards),
                        f"{r.eval_s:.1f}",
                    ]
                )
        write_atomic(self.out / "per_unit.csv", per_unit.getvalue().encode())
        paths["per_unit"] = self.out / "per_unit.csv"
        log("\n" + to_markdown(table))
        log(f"[bench] wrote {', '.join(str(p) for p in paths.values())}")
        reused = [p.unit.key for p in planned if p.unit.key in results and p.unit.key not in ran]
        return RunSummary(table=table, paths=paths, ran=ran, reused=reused)
