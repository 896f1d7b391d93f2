"""make tune's search and its report, with the measurement replaced by a table of what each configuration holds
(the integration tier measures for real): the knobs turned in order, a change kept only when it holds more, the
values beyond one that holds no more pruned, the budget, the resume, and the override written."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from experiments import tune
from experiments.points import Config, Point
from experiments.tune import Tuner, better_of, doubling, pareto, parse_budget
from lab.errors import LabError

MIB = 2**20


def point(config: Config, held: float, memory_mib: float = 200, cores: float = 1.0, seconds: float = 60) -> Point:
    return Point(
        config=config, held_rps=held, held_p99_ms=400.0, result="broke", saturation_rps=held * 1.2,
        service_ms=20.0, service_quantiles_ms=[[0.0, 18.0], [0.5, 20.0], [1.0, 40.0]], peak_cores=cores,
        cpu_per_request_ms=18.0, memory_bytes=memory_mib * MIB, container_memory_bytes=None, cpus=1.0,
        verdict="cpu-bound", seconds=seconds, measured_at=time.time(),
    )  # fmt: skip


def held_by(config: Config) -> float:
    """A stand-in machine: ONNX holds 5x, batching 2x, a second worker 1.5x and a third nothing more; threads
    do nothing; async does nothing."""
    held = 50.0 * (5 if config.runtime == "onnx" else 1) * (2 if config.batching else 1)
    return held * {1: 1.0, 2: 1.5}.get(config.workers, 1.5)


def tuner(tmp_path, budget: float = 3600, measured: list | None = None) -> Tuner:
    def measure(config: Config) -> Point:
        if measured is not None:
            measured.append(config)
        return point(config, held_by(config), memory_mib=150 * config.workers)

    return Tuner(base=Config(), cpus=2.0, budget_seconds=budget, measure=measure, state=tmp_path / "points.json",
                 identity={"mode": "native"})  # fmt: skip


def test_the_search_keeps_each_change_that_holds_more_and_prunes_values_beyond_one_that_does_not(tmp_path):
    search = tuner(tmp_path)
    best = search.run()
    assert (best.config.runtime, best.config.batching, best.config.workers) == ("onnx", True, 2)
    assert best.held_rps == held_by(best.config)
    labels = [search.points[key].config for key in search.order]
    assert Config(workers=3, runtime="onnx", batching=True) in labels  # measured: it holds no more than 2
    # threads did nothing from 40 upward: 160 is pruned once 80 held no more
    assert any(p.label.startswith("2 workers, sync x160") and "threads 80 held no more" in p.reason
               for p in search.pruned)  # fmt: skip
    assert len(search.points) < 2 * 2 * 3 * 2 * 7 * 6 * 6 * 2  # far from the grid


def test_ties_within_the_noise_go_to_the_point_with_less_memory():
    small, large = point(Config(), 100, memory_mib=150), point(Config(workers=2), 103, memory_mib=300)
    assert better_of(small, large) is small
    assert better_of(large, small) is small
    assert better_of(small, point(Config(workers=2), 110, memory_mib=300)).held_rps == 110


def test_the_frontier_keeps_only_points_that_nothing_beats_on_both_axes():
    cheap, dear, beaten = point(Config(), 100, 150), point(Config(workers=2), 150, 300), point(Config(), 90, 200)
    assert pareto([cheap, dear, beaten], lambda p: p.memory_bytes) == [cheap, dear]


def test_the_budget_stops_the_search_once_the_next_point_would_not_fit(tmp_path):
    search = tuner(tmp_path, budget=30)
    search.measure = lambda config: point(config, held_by(config), seconds=40)  # each point "takes" 40 s
    best = search.run()
    assert len(search.points) == 1
    assert best.config == Config()


def test_a_second_run_resumes_from_the_points_file_without_measuring_them_again(tmp_path):
    first: list[Config] = []
    tuner(tmp_path, measured=first).run()
    again: list[Config] = []
    resumed = tuner(tmp_path, measured=again)
    resumed.load()
    assert resumed.resumed == len(first)
    assert resumed.run().config == tuner(tmp_path).run().config
    assert again == []


def test_a_points_file_from_another_tune_is_not_reused(tmp_path, capsys):
    tuner(tmp_path).run()
    other = tuner(tmp_path)
    other.identity = {"mode": "compose"}
    other.load()
    assert other.points == {}
    assert "from another tune" in capsys.readouterr().out


def test_the_report_the_chart_and_an_override_that_sets_the_chosen_configuration(tmp_path):
    result = tune.tune(
        None, tmp_path, 3600, native=True,
        measure_point=lambda config, *args, **kwargs: point(config, held_by(config), memory_mib=150 * config.workers),
    )  # fmt: skip
    assert result["chosen"]["label"] == "2 workers, sync x40, onnx, batch 64/2ms"
    assert (tmp_path / "pareto.png").stat().st_size > 10_000
    override = yaml.safe_load((tmp_path / "tuned.yaml").read_text())
    assert override["services"]["api"]["environment"] == {
        "WEB_CONCURRENCY": "2", "LAB_HANDLER_STYLE": "sync", "LAB_THREADPOOL_SIZE": "40", "LAB_BATCHING": "true",
        "LAB_BATCH_MAX_SIZE": "64", "LAB_BATCH_MAX_WAIT_MS": "2", "LAB_MODEL_RUNTIME": "onnx", "LAB_CACHE": "off",
    }  # fmt: skip
    assert (tmp_path / "tuned.yaml").read_text().startswith("# Generated by `make tune`")
    summary = (tmp_path / "summary.md").read_text()
    assert "## Chosen: 2 workers, sync x40, onnx, batch 64/2ms" in summary
    assert "## Pruned without measuring" in summary
    assert json.loads((tmp_path / "tune.json").read_text())["chosen"]["replica"]["saturation_rps"] > 0


@pytest.mark.parametrize(("text", "seconds"), [("20m", 1200), ("90s", 90), ("1h30m", 5400), ("45", 45)])
def test_a_budget_reads_as_a_duration(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "20 minutes", "m"])
def test_a_budget_that_is_not_a_duration_is_refused_with_the_forms_that_work(text):
    with pytest.raises(LabError, match="write 20m, 90s, 1h or 1h30m"):
        parse_budget(text)


def test_an_ordered_knob_doubles_and_halves_around_where_it_stands():
    assert doubling(40, 4, 160) == [5, 10, 20, 40, 80, 160]
    assert doubling(64, 8, 256) == [8, 16, 32, 64, 128, 256]


def test_knobs_a_configuration_does_not_use_do_not_make_it_another_point():
    assert Config(batch_max_size=16).key() == Config().key()
    assert Config(batching=True, batch_max_size=16).key() != Config(batching=True).key()


def test_a_scenario_that_starts_beyond_a_knobs_range_is_walked_down_to_the_fewest_workers_that_hold_as_much(
    tmp_path,
):
    search = tuner(tmp_path)
    search.base = Config(workers=5)  # the stand-in machine: 2 workers or more hold 1.5x, each costs memory
    assert search.run().config.workers == 2
