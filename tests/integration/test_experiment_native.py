"""The experiment runner without Docker: the same scenario file, run as processes on 127.0.0.1."""

from __future__ import annotations

from experiments.run import Plan, run_experiment
from tests.support.prometheus import promtool


def test_a_native_experiment_reports_the_blocked_event_loop(tmp_path, model_dir, monkeypatch):
    promtool()  # skips naming Prometheus where it is missing (fails under LAB_REQUIRE_PROMETHEUS=1)
    monkeypatch.setattr("experiments.stack.MODEL_DIR", model_dir)
    plan = Plan(start_users=5, step_users=5, step_seconds=10, max_users=10)

    report, summary = run_experiment("blocking-async", tmp_path, plan, native=True, progress_every=10)

    assert report["mode"] == "native"
    assert report["peaks"]["event_loop_lag"] > 0.1
    assert report["verdict"] == "event-loop-blocked"
    assert "**Verdict under load: event-loop-blocked**" in summary.read_text()
    assert (summary.parent / "timeline.png").is_file()
