"""The ``lerobot-vla-speed`` harness: case discovery, filters, one real run on the tiny cases, memory and GPU-fit
arithmetic. Timings themselves are not asserted (a benchmark is a script that prints a table, not a timed test)."""

from __future__ import annotations

import json

import pytest
from lerobot_vla_tools.speed import BenchCase, iter_cases
from lerobot_vla_tools.speed.cli import SpeedConfig, settings_from
from lerobot_vla_tools.speed.harness import (
    GIB,
    BenchSettings,
    format_markdown,
    ratios,
    run_benchmark,
    select_cases,
    smallest_gpu,
    train_bytes_at,
)
from lerobot_vla_tools.testing import run_cli

TINY_CASES = ("evo1@tiny",)


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    """One real ``lerobot-vla-speed`` run over upstream evo1's tiny case (both phases, batch 1)."""
    out = tmp_path_factory.mktemp("speed")
    proc = run_cli(
        "lerobot-vla-speed",
        "--policies=evo1",
        "--sizes=tiny",
        "--batch_sizes=1",
        "--repeats=2",
        "--warmup=1",
        f"--output_json={out / 'speed.json'}",
        f"--output_md={out / 'speed.md'}",
    )
    return json.loads((out / "speed.json").read_text()), (out / "speed.md").read_text(), proc.stdout


def test_every_case_module_contributes_a_tiny_and_a_paper_case():
    keys = [c.key for c in iter_cases()]
    assert len(keys) == len(set(keys)), "case keys must be unique"
    for policy in ("evo1", "smolvla"):
        assert {f"{policy}@tiny", f"{policy}@paper"} <= set(keys)


def test_filters_select_by_policy_type_and_size():
    cases = [
        BenchCase("evo1", "evo1", "tiny"),
        BenchCase("evo1", "evo1", "paper"),
        BenchCase("vla_adapter (pro)", "vla_adapter", "tiny"),
    ]
    pick = lambda **kw: [c.key for c in select_cases(BenchSettings(**kw), cases)]  # noqa: E731
    assert pick(policies=["evo1"], sizes=["tiny"]) == ["evo1@tiny"]
    assert pick(policies=[], sizes=["tiny"]) == ["evo1@tiny", "vla_adapter (pro)@tiny"]
    assert pick(policies=["vla_adapter"], sizes=["tiny", "paper"]) == ["vla_adapter (pro)@tiny"]
    # a case name selects that case only; "evo1" is upstream evo1, not its accelerated variant
    cases.append(BenchCase("evo1 (accelerated)", "evo1", "tiny"))
    assert pick(policies=["evo1"], sizes=["tiny"]) == ["evo1@tiny"]
    assert pick(policies=["evo1 (accelerated)"], sizes=["tiny"]) == ["evo1 (accelerated)@tiny"]
    with pytest.raises(
        ValueError,
        match=r"no bench case for \[.pi0.\]; available: evo1, evo1 \(accelerated\), vla_adapter, vla_adapter \(pro\)",
    ):
        pick(policies=["pi0"])
    with pytest.raises(ValueError, match="--sizes"):
        pick(sizes=["huge"])


def test_compile_mode_adds_a_compiled_row_after_each_policy_of_ours(monkeypatch):
    cases = [
        BenchCase("evo1", "evo1", "tiny"),
        BenchCase("evo1 (accelerated)", "evo1", "tiny", setup=print),
        BenchCase("seer", "seer", "tiny", overrides={"size": "base"}),
    ]
    picked = select_cases(BenchSettings(sizes=["tiny"], compile_mode="reduce-overhead"), cases)
    # upstream evo1 has no compile option of ours: eager rows only
    assert [c.key for c in picked] == [
        "evo1@tiny",
        "evo1 (accelerated)@tiny",
        "seer@tiny",
        "seer + compile@tiny",
    ]
    compiled = picked[-1]
    assert compiled.overrides == {"size": "base", "compile_model": True, "compile_mode": "reduce-overhead"}
    assert cases[2].overrides == {"size": "base"}  # the eager case is unchanged
    assert select_cases(BenchSettings(sizes=["tiny"]), cases) == cases
    # lerobot-vla-speed selects once and hands the selection to run_benchmark, which measures it as given
    from lerobot_vla_tools.speed import harness

    measured_keys = []
    monkeypatch.setattr(
        harness, "_run_worker", lambda spec, *a: measured_keys.append(spec["case"]) or {"error": "-"}
    )
    run_benchmark(
        BenchSettings(sizes=["tiny"], compile_mode="default", phases=["infer"], batch_sizes=[1]),
        picked,
        log=lambda _: None,
    )
    assert measured_keys == [c.key for c in picked]
    with pytest.raises(ValueError, match="--compile_mode='fast': expected one of default, reduce-overhead"):
        settings_from(SpeedConfig(compile_mode="fast"))


def test_command_line_options_are_validated_with_the_fix_in_the_message():
    assert settings_from(SpeedConfig(batch_sizes="1, 8", policies="evo1,smolvla")).batch_sizes == [1, 8]
    with pytest.raises(ValueError, match="--batch_sizes='1,x': expected comma-separated integers"):
        settings_from(SpeedConfig(batch_sizes="1,x"))
    with pytest.raises(ValueError, match="--dtype='fp8'"):
        settings_from(SpeedConfig(dtype="fp8"))
    with pytest.raises(ValueError, match="--phases"):
        settings_from(SpeedConfig(phases="infer,eval"))


def test_a_real_run_reports_every_metric_for_every_selected_case(tiny_report):
    report, _, _ = tiny_report
    assert [c["case"] for c in report["cases"]] == list(TINY_CASES)
    assert report["settings"]["device"] == "cpu" and report["settings"]["dtype"] == "float32"
    assert report["machine"]["cpu_cores"] >= 1 and report["machine"]["lerobot"].startswith("0.6")
    for case in report["cases"]:
        runs = {(r["phase"], r["batch_size"]): r for r in case["runs"]}
        assert set(runs) == {("infer", 1), ("train", 1)}, case["case"]
        infer, train = runs["infer", 1], runs["train", 1]
        assert "error" not in infer and "error" not in train, (infer.get("error"), train.get("error"))
        for metric in ("refresh_s", "chunk_s", "processors_s"):
            assert len(infer["samples"][metric]) == 2 and all(v > 0 for v in infer["samples"][metric]), metric
        for metric in ("per_action_s", "actions_per_s", "queries_per_s"):
            assert len(infer[metric]) == 2 and all(v > 0 for v in infer[metric]), metric
        assert len(train["samples"]["step_s"]) == 2 and all(v > 0 for v in train["samples"]["step_s"])
        # memory includes at least the weights; training adds the optimizer state of the trainable part
        assert infer["peak_bytes"] >= infer["weights_bytes"] > 0
        assert train["peak_bytes"] >= train["static_bytes"] >= train["weights_bytes"]
        assert 0 < train["params_trainable"] <= train["params_total"] == infer["params_total"]
        # one chunk = one refresh + (n_action_steps - 1) queue pops
        assert infer["n_action_steps"] == 8
        assert all(
            c >= r for c, r in zip(infer["samples"]["chunk_s"], infer["samples"]["refresh_s"], strict=True)
        )


def test_the_markdown_table_has_a_row_per_case_and_names_the_machine(tiny_report):
    report, markdown, stdout = tiny_report
    assert markdown.strip() == format_markdown(report).strip()
    assert markdown.strip() in stdout
    assert f"{report['machine']['cpu_cores']}-core CPU" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| evo1 | tiny |")]
    assert len(rows) == 2  # an inference row and a training row
    assert "smallest GPU" in markdown and "estimate" in markdown


def test_ratios_are_relative_to_upstream_evo1_at_the_same_size(tiny_report):
    report, _, _ = tiny_report
    doubled = json.loads(json.dumps(report["cases"][0]))
    doubled.update(case="twice_as_slow@tiny", name="twice_as_slow")
    for run in doubled["runs"]:
        if run["phase"] == "infer":
            run["samples"]["refresh_s"] = [2 * v for v in run["samples"]["refresh_s"]]
    r = ratios({**report, "cases": [*report["cases"], doubled]}, reference="evo1")
    assert r == {"evo1@tiny": 1.0, "twice_as_slow@tiny": pytest.approx(2.0)}


def test_the_smolvla_paper_case_is_the_published_045b_model(tmp_path):
    """SmolVLA reports 0.45B parameters; the SmolVLM2-500M preset + smolvla defaults must give exactly that."""
    from lerobot.policies.factory import make_policy_config
    from lerobot_vla_tools.cli.info import build_on_meta, count_parameters

    (case,) = [c for c in iter_cases() if c.key == "smolvla@paper"]
    overrides = case.prepare(tmp_path)
    counts = count_parameters(build_on_meta(make_policy_config("smolvla", **case.overrides, **overrides)))
    assert counts["total_params"] == pytest.approx(0.450e9, rel=0.001)


def test_a_failing_case_is_reported_and_does_not_stop_the_run():
    broken = BenchCase("broken", "no_such_policy_type", "tiny")
    report = run_benchmark(
        BenchSettings(policies=[], sizes=["tiny"], batch_sizes=[1], phases=["infer"], repeats=1, warmup=0),
        cases=[broken],
        log=lambda _: None,
    )
    (run,) = report["cases"][0]["runs"]
    assert "no_such_policy_type" in run["error"]
    assert "broken (tiny): FAILED infer b1" in format_markdown(report)


def test_peak_rss_sees_an_allocation_made_inside_the_block():
    import torch
    from lerobot_vla_tools.speed.worker import PeakRSS, rss_bytes

    before = rss_bytes()
    with PeakRSS() as peak:
        x = torch.ones(64, 1024, 1024)  # 256 MiB, touched
        del x
    assert peak.peak - before >= 250 * 1024**2


def test_smallest_gpu_adds_the_cuda_context_and_keeps_a_margin():
    assert smallest_gpu(2.3e9).startswith("8 GB")  # Evo-1's 2.3 GB
    assert smallest_gpu(7.0 * GIB).startswith("12 GB")  # 7 + 0.75 > 0.9 * 8
    assert smallest_gpu(30 * GIB).startswith("40 GB")
    assert smallest_gpu(500 * GIB).startswith("> 141 GB")


def test_training_memory_extrapolates_only_the_activations_with_the_batch():
    run = {"batch_size": 2, "peak_bytes": 10 * GIB, "static_bytes": 6 * GIB}
    assert train_bytes_at(run, 8) == 6 * GIB + 4 * GIB * 4


def test_saved_reports_are_rendered_again_without_measuring(tiny_report, tmp_path, capsys):
    from lerobot_vla_tools.speed.cli import main

    report, markdown, _ = tiny_report
    (tmp_path / "r.json").write_text(json.dumps(report))
    assert main([f"--from_json={tmp_path / 'r.json'}"]) == 0
    assert capsys.readouterr().out.strip() == markdown.strip()
