"""`make tune` for real, natively, with a budget of one point: the API, Locust and Prometheus started for it,
the probes and the breaking-point finder run, a report, a chart and an override that `docker compose config`
merges; then a second run resumes from the points file instead of measuring again."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from lab.paths import REPO
from tests.support.compose import require_docker
from tests.support.tools import promtool

pytestmark = pytest.mark.timeout(300)


def make_tune(out, model_dir) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "tune", "SCENARIO=baseline", "TUNE_BUDGET=1s", f"MODEL_DIR={model_dir}",
         f"TUNE_ARGS=--native --step-seconds 3 --out {out}"],
        cwd=REPO, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip


def test_make_tune_with_a_tiny_budget_measures_one_point_reports_it_and_writes_an_override_compose_accepts(
    tmp_path, model_dir
):
    promtool()
    out = tmp_path / "tune"

    first = make_tune(out, model_dir)

    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "point 1 (where the scenario stands): 1 worker, sync x40, sklearn, unbatched" in first.stdout
    assert "the budget (0 min) is spent" in first.stdout
    result = json.loads((out / "tune.json").read_text())
    [point] = result["points"]
    assert point["held_rps"] > 0, point["result"]
    assert point["saturation_rps"] >= point["held_rps"] * 0.8  # the probe and the finder saw the same API
    assert 0 < point["service_ms"] < 1000
    assert point["memory_bytes"] > 50 * 2**20  # a worker with both models loaded
    assert result["chosen"]["replica"]["service_quantiles"][0][0] == 0
    assert (out / "pareto.png").stat().st_size > 10_000
    assert "## Chosen: 1 worker, sync x40, sklearn, unbatched" in (out / "summary.md").read_text()

    require_docker()
    merged = subprocess.run(
        ["docker", "compose", "-f", "compose.yaml", "-f", "scenarios/baseline.yaml", "-f", str(out / "tuned.yaml"),
         "config", "--format", "json"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert merged.returncode == 0, merged.stderr
    environment = json.loads(merged.stdout)["services"]["api"]["environment"]
    tuned = yaml.safe_load((out / "tuned.yaml").read_text())["services"]["api"]["environment"]
    assert {key: environment[key] for key in tuned} == tuned

    again = make_tune(out, model_dir)

    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resuming: 1 point(s) already measured" in again.stdout
    assert "point 1 (" not in again.stdout  # nothing measured again
    assert json.loads((out / "tune.json").read_text())["points"] == result["points"]
