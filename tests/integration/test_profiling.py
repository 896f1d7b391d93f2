"""Flame graphs under load: py-spy records the real API's gunicorn master and its workers, natively, while client
threads on 127.0.0.1 keep them busy, and the speedscope file shows where the time went."""

from __future__ import annotations

import pytest

from lab.api import running_api
from lab.load import closed_loop
from lab.profiling import Frame, api_target, read_speedscope, record
from lab.scenarios import api_service

SECONDS = 6  # the speedscope file covers the first half

pytestmark = pytest.mark.timeout(120)


def in_forest_predict(frame: Frame) -> bool:
    return frame.name == "ForestClassifier.predict_proba"


def in_compiled_tree_code(frame: Frame) -> bool:
    """A native frame of scikit-learn's Cython tree module (its `.so`), which only --native records."""
    return "sklearn/tree/_tree" in frame.file and frame.file.endswith(".so")


def in_the_blocking_sleep(frame: Frame) -> bool:
    """time.sleep's C function, called from the workload's async handler."""
    return frame.name == "time_sleep"


def profile_scenario(scenario: str, tmp_path, model_dir):
    service = api_service(scenario)
    with running_api(tmp_path / "api", model_dir, workers=2, **service.environment) as api, closed_loop(api.url):
        profile = record(api_target(api.process.pid), SECONDS, tmp_path / "profiles", scenario)
    return profile


def test_a_cpu_bound_profile_under_load_spends_its_time_in_the_models_predict_down_to_the_tree_code(
    tmp_path, model_dir
):
    profile = profile_scenario("cpu-bound", tmp_path, model_dir)

    samples = read_speedscope(profile.speedscope)
    predict, tree = samples.share(in_forest_predict), samples.share(in_compiled_tree_code)
    print(f"cpu-bound: ForestClassifier.predict_proba {predict:.0%} of the samples, its tree code {tree:.0%}")
    assert predict > 0.15, sorted(samples.shares().items(), key=lambda item: -item[1])[:30]
    assert tree > 0.05
    assert profile.svg.read_text().lstrip().startswith("<?xml")
    assert "ForestClassifier.predict_proba" in profile.svg.read_text()


def test_a_blocking_async_profile_under_load_spends_its_time_in_the_handlers_blocking_sleep(tmp_path, model_dir):
    profile = profile_scenario("blocking-async", tmp_path, model_dir)

    samples = read_speedscope(profile.speedscope)
    sleep = samples.share(in_the_blocking_sleep)
    print(f"blocking-async: time.sleep {sleep:.0%} of the samples")
    assert sleep > 0.15, sorted(samples.shares().items(), key=lambda item: -item[1])[:30]
    sleeping = [stack for stack, _ in samples.stacks if any(in_the_blocking_sleep(frame) for frame in stack)]
    assert all(any(frame.name == "Workload.run" for frame in stack) for stack in sleeping), "a sleep not the handler's"
    assert "time_sleep" in profile.svg.read_text()
