"""The experiment runner without Docker: the same scenario file, run as processes on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from experiments.run import Plan, main, run_experiment
from lab.profiling import read_speedscope
from model_api.artifacts import METADATA
from tests.support.tools import promtool

# A whole native experiment per test: the three processes up, a breaking-point run, the report.
pytestmark = pytest.mark.timeout(480)


def test_a_native_experiment_reports_the_blocked_event_loop_and_profiles_its_sleep(tmp_path, model_dir):
    promtool()  # skips naming Prometheus where it is missing (fails under LAB_REQUIRE_PROMETHEUS=1)
    plan = Plan(start_users=5, step_users=5, step_seconds=10, max_users=10)

    report, summary = run_experiment("blocking-async", tmp_path, plan, native=True, progress_every=10,
                                     model_dir=model_dir)  # fmt: skip

    assert report.mode == "native"
    assert report.peaks["cpu_limit"] == 1  # the scenario's cpus: 1, stood in for by one pinned core
    assert not report.peaks["cpu_throttled"]  # a pinned core has no quota
    assert report.peaks["event_loop_lag"] > 0.1
    assert report.verdict == "event-loop-blocked"
    assert "**Verdict under load: event-loop-blocked**" in summary.read_text()
    assert "| CPU against the limit (1 core) |" in summary.read_text()
    assert (summary.parent / "timeline.png").is_file()
    assert report.profile, "the runner took no flame graph of the breaking step"
    assert Path(report.profile["svg"]).parent == summary.parent
    assert report.profile["process"].startswith("the API's gunicorn master")
    samples = read_speedscope(Path(report.profile["speedscope"]))
    assert samples.share(lambda frame: frame.name == "time_sleep") > 0.1
    assert Path(report.profile["svg"]).name in summary.read_text()


def test_a_native_experiment_whose_api_cannot_start_ends_in_one_line_and_exit_code_1(tmp_path, model_dir, capsys):
    """gunicorn refuses models trained by another scikit-learn: the runner says so in one line, no traceback."""
    promtool()
    stale = tmp_path / "stale"
    shutil.copytree(model_dir, stale)
    metadata = json.loads((stale / METADATA).read_text())
    (stale / METADATA).write_text(json.dumps({**metadata, "sklearn_version": "1.0.2"}))

    code = main(["baseline", "--native", "--no-profile", "--model-dir", str(stale), "--out", str(tmp_path / "out")])

    error = capsys.readouterr().err
    assert code == 1
    assert error.startswith("experiment failed: gunicorn exited with")
    assert "trained with scikit-learn 1.0.2" in error
    assert "Traceback" not in error
