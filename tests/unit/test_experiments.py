"""The experiment runner's reports, from a synthetic run: steps, the verdict under load, summary, charts, compare."""

from __future__ import annotations

import json
import time

import pytest

from experiments import screenshots
from experiments.collect import SERIES, RunSeries
from experiments.compare import compare
from experiments.report import build_report, load_report, steps, summary_markdown, verdict_under_load, write_report
from experiments.run import DIAGNOSIS_LAG_SECONDS, Plan, main, wait_for_diagnosis
from experiments.time_to_verdict import time_to_verdict
from lab.browser import camel
from lab.errors import LabError
from lab.native import native_cores
from lab.profiling import Profile
from lab.scenarios import api_service, interpolate
from model_api.vocabulary import STEP_SECONDS

BREAKING_POINT = {
    "result": "30 users broke the SLO: P99 1300 ms (SLO 1000 ms), failures 5.9% (limit 1%)",
    "last_held": {"users": 20, "seconds": 15, "requests": 300, "failures": 0, "rps": 20.0, "failure_ratio": 0.0,
                  "p50_ms": 200, "p95_ms": 500, "p99_ms": 790},
    "breaking_step": {"users": 30, "seconds": 15, "requests": 330, "failures": 20, "rps": 22.0, "failure_ratio": 0.059,
                      "p50_ms": 600, "p95_ms": 1100, "p99_ms": 1300},
    "slo_ms": 1000,
    "max_failure_ratio": 0.01,
    "steps": [],
}  # fmt: skip


def synthetic_run() -> RunSeries:
    """10 users for 4 samples, 20 for 4, 30 for 4: RPS 10/20/22, CPU 0.3/0.8/0.99, healthy then cpu-bound."""
    users = [10] * 4 + [20] * 4 + [30] * 4
    level = {10: (10, 0.3, 0.05), 20: (20, 0.8, 0.4), 30: (22, 0.99, 1.2)}
    values: dict[str, list[float | None]] = {name: [None] * 12 for name in SERIES}
    values["users"] = list(map(float, users))
    values["rps_client"] = [float(level[u][0]) for u in users]
    values["cpu_utilization"] = [level[u][1] for u in users]
    values["p99_client"] = [level[u][2] for u in users]
    values["cpu_limit"] = [1.0] * 12
    values["rps_client"][0] = None  # no rate yet at the very start
    # Server requests per 30 s window: 300, 600, 1,200; a P99.9 only where a window held 1,000 (30 users).
    values["requests_server"] = [30.0 * level[u][0] for u in users]
    values["p999_server"] = [1.5 if u == 30 else None for u in users]
    verdicts = ["healthy"] * 5 + ["cpu-bound"] * 6 + ["queueing"]
    return RunSeries([1000.0 + 5 * i for i in range(12)], values, verdicts)


def test_steps_group_the_run_by_users_with_means_and_the_verdict_held_most():
    result = steps(synthetic_run())

    assert [s.users for s in result] == [10, 20, 30]
    assert [s.seconds for s in result] == [20, 20, 20]
    assert [s.rps for s in result] == [10, 20, 22]  # the missing first sample is left out, not counted as 0
    assert [s.cpu_utilization for s in result] == pytest.approx([0.3, 0.8, 0.99])
    assert [s.p99_client_ms for s in result] == pytest.approx([50, 400, 1200])
    assert [s.verdict for s in result] == ["healthy", "cpu-bound", "cpu-bound"]
    assert [s.p999_server_ms for s in result] == [None, None, 1500]
    assert [s.requests_server for s in result] == [300, 600, 660]


def test_a_p999_is_shown_with_its_requests_and_in_words_where_they_were_too_few():
    summary = summary_markdown(build_report("cpu-bound", "compose", synthetic_run(), BREAKING_POINT))

    rows = {line.split("|")[1].strip(): line for line in summary.splitlines() if line.startswith("| ")}
    assert "| too few requests (300 requests) |" in rows["10"]
    assert "| too few requests (600 requests) |" in rows["20"]
    assert "| 1500 ms (660 requests) |" in rows["30"]
    assert "| – |" in rows["30"]  # no client series at all: unknown, not "too few"
    assert rows["server P99.9 (most requests in a 30 s window)"].endswith("| 1500 ms (660 requests) |")


def test_the_verdict_under_load_is_the_bottleneck_named_in_the_heaviest_step():
    run = synthetic_run()  # at 30 users: cpu-bound 3x, queueing 1x
    assert verdict_under_load(run, broke=True) == "cpu-bound"
    assert verdict_under_load(run, broke=False) == "cpu-bound"

    run.verdicts[8:12] = ["healthy", "healthy", "healthy", "queueing"]
    assert verdict_under_load(run, broke=True) == "queueing", "when the SLO broke, a named bottleneck wins"
    assert verdict_under_load(run, broke=False) == "healthy", "when it held, the verdict held most often"


def test_the_verdict_under_load_counts_the_rule_window_after_a_short_last_step():
    """The verdict lags the load: a 10 s last step may have none of its own, and the 30 s after it describe it."""
    values = {name: [None] * 9 for name in SERIES}
    values["users"] = [None, 0.0, 5.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    run = RunSeries(
        [1000.0 + 5 * i for i in range(9)], values, [None] * 4 + ["event-loop-blocked"] * 3 + ["healthy"] * 2
    )
    assert verdict_under_load(run, broke=True) == "event-loop-blocked"
    run.timestamps[-2:] = [1200.0, 1205.0]  # beyond the rule window: no longer the step's
    run.verdicts[4:7] = ["healthy"] * 3
    assert verdict_under_load(run, broke=False) == "healthy"
    run.verdicts[4:7] = [None] * 3
    assert verdict_under_load(run, broke=False) is None, "samples beyond the window are not counted"


HELD = {**BREAKING_POINT, "result": "reached 20 users (the maximum) without breaking the SLO", "breaking_step": None}


def one_long_step(verdicts: list[str | None]) -> RunSeries:
    """memory-bound's or cold-start's plan: no users at first, then 20 for the rest of the samples, 5 s apart."""
    values: dict[str, list[float | None]] = {name: [None] * len(verdicts) for name in SERIES}
    values["users"] = [0.0] + [20.0] * (len(verdicts) - 1)
    return RunSeries([1000.0 + 5 * i for i in range(len(verdicts))], values, verdicts)


def test_the_time_to_verdict_runs_from_the_start_of_the_step_that_broke_to_its_verdict_named():
    run = synthetic_run()  # 30 users, the step that broke, from 1040 s on
    run.verdicts[5:12] = ["healthy"] * 5 + ["cpu-bound"] * 2  # named at 1050 s

    ttv = build_report("cpu-bound", "compose", run, BREAKING_POINT).time_to_verdict

    assert (ttv.seconds, ttv.verdict, ttv.users, ttv.broke) == (10, "cpu-bound", 30, True)
    assert (ttv.crossed_at, ttv.named_at, ttv.resolution_s) == (1040, 1050, STEP_SECONDS)
    assert ttv.short() == "10 s"


def test_the_crossing_is_when_the_steps_users_all_run_not_while_they_spawn():
    run = synthetic_run()
    run.values["users"][8] = 27.0  # still spawning at 1040 s: 30 users from 1045 s on
    run.verdicts[8:12] = ["healthy", "healthy", "cpu-bound", "cpu-bound"]

    ttv = time_to_verdict(run, "cpu-bound", broke=True)

    assert (ttv.crossed_at, ttv.seconds) == (1045, 5)


def test_a_verdict_named_already_when_the_load_crosses_capacity_counts_zero_seconds():
    run = synthetic_run()  # cpu-bound from 1025 s, in the 20-user step that held, and still at 1040 s
    assert time_to_verdict(run, "cpu-bound", broke=True).seconds == 0

    run.verdicts[8] = "queueing"  # named before, but gone when the load crossed: from the crossing on, 5 s
    assert time_to_verdict(run, "cpu-bound", broke=True).seconds == 5


def test_a_run_that_held_counts_from_the_start_of_its_heaviest_step_and_says_so():
    run = one_long_step([None, None, None, "healthy", "healthy", *["memory-bound"] * 6])

    report = build_report("memory-bound", "compose", run, HELD)
    ttv = report.time_to_verdict

    assert report.verdict == "memory-bound"
    assert (ttv.seconds, ttv.users, ttv.broke, ttv.crossed_at) == (20, 20, False, 1005)
    assert ttv.short() == "20 s (SLO held)"
    assert "**Time to verdict: 20 s (SLO held)**: verdict memory-bound named 20 s after the heaviest step began" in (
        summary_markdown(report)
    )


def test_a_run_healthy_under_load_has_no_time_to_verdict_and_says_why():
    report = build_report("async-io", "compose", one_long_step([None, None, *["healthy"] * 6]), HELD)

    assert report.time_to_verdict.seconds is None
    assert report.time_to_verdict.short() == "none (healthy under load: no bottleneck to name)"
    assert "**Time to verdict: none** (healthy under load: no bottleneck to name)" in summary_markdown(report)


def test_a_run_without_users_or_verdicts_has_no_time_to_verdict():
    assert time_to_verdict(one_long_step([None] * 4), None, broke=False).reason == "no verdict under load"
    empty = RunSeries([1000.0], {name: [None] for name in SERIES}, [None])
    assert time_to_verdict(empty, None, broke=False).reason == "the run recorded no users"


def test_the_summary_names_the_verdict_the_seconds_and_the_users_where_the_load_crossed_capacity():
    text = summary_markdown(build_report("cpu-bound", "compose", synthetic_run(), BREAKING_POINT))

    assert (
        "**Time to verdict: 0 s**: verdict cpu-bound named 0 s after the load crossed capacity (at 30 users, the "
        "step that broke the SLO, once all were running; read from samples 5 s apart, so to within 5 s)."
    ) in text


def test_a_report_written_before_the_time_to_verdict_reads_back_without_one(tmp_path):
    for name in ("baseline", "batching"):
        write_report(build_report(name, "compose", synthetic_run(), BREAKING_POINT), tmp_path / name)
    path = tmp_path / "baseline" / "report.json"
    data = json.loads(path.read_text())
    del data["time_to_verdict"]
    path.write_text(json.dumps(data))

    old = load_report(tmp_path / "baseline")

    assert old.time_to_verdict is None
    assert "Time to verdict: not measured" in summary_markdown(old)
    rows = compare(["baseline", "batching"], tmp_path).read_text()
    assert "| baseline | cpu-bound | – | 20 |" in rows
    assert "| batching | cpu-bound | 0 s | 20 |" in rows


class EvaluatingPrometheus:
    """Stands in for the lab's Prometheus in one respect: the time it last evaluated the diagnosis rules, a
    second later at each query (None until its first evaluation)."""

    def __init__(self, latest: float | None, first_after: int = 0) -> None:
        self.latest, self.first_after, self.queries = latest, first_after, 0

    def value(self, expr: str) -> float | None:
        assert expr == "max(timestamp(job:lab_traffic_settled:bool))"  # evaluated always, with traffic or none
        self.queries += 1
        if self.queries <= self.first_after:
            return None
        self.latest += 1
        return self.latest


def test_the_report_waits_until_the_diagnosis_has_evaluated_past_the_last_step(monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    ended = time.time()
    prometheus = EvaluatingPrometheus(latest=ended - 3)  # three seconds behind when the load stopped

    until = wait_for_diagnosis(prometheus, "cpu-bound", ended)

    assert until == ended + DIAGNOSIS_LAG_SECONDS
    assert prometheus.latest >= until
    assert prometheus.queries == DIAGNOSIS_LAG_SECONDS + 3


def test_the_report_waits_while_the_rules_have_not_been_evaluated_at_all(monkeypatch):
    """No verdict yet is no reason to stop waiting: a run that breaks its SLO before its traffic has settled has its
    first verdicts only after the load stopped."""
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    ended = time.time()
    prometheus = EvaluatingPrometheus(latest=ended, first_after=5)

    wait_for_diagnosis(prometheus, "cpu-bound", ended)

    assert prometheus.latest >= ended + DIAGNOSIS_LAG_SECONDS
    assert prometheus.queries == 5 + DIAGNOSIS_LAG_SECONDS


def test_the_report_names_the_breaking_point_the_verdict_and_the_peaks():
    report = build_report("cpu-bound", "compose", synthetic_run(), BREAKING_POINT)

    assert report.verdict == "cpu-bound"
    assert report.verdicts == {"cpu-bound": 6, "healthy": 5, "queueing": 1}
    assert report.peaks["cpu_utilization"] == 0.99
    assert report.peaks["batch_size"] is None


def test_the_report_folder_has_a_summary_and_three_png_charts(tmp_path):
    report = build_report("cpu-bound", "compose", synthetic_run(), BREAKING_POINT)

    summary = write_report(report, tmp_path / "cpu-bound")

    text = summary.read_text()
    # 300 requests in the step: too few for a P99.9 (P999_MIN_SAMPLES)
    assert "| last step that held | 20 | 20.0 | 790 ms | too few requests (300 requests) | 0.0% |" in text
    assert "| step that broke | 30 | 22.0 | 1300 ms | too few requests (330 requests) | 5.9% |" in text
    assert "**Verdict under load: cpu-bound**" in text
    assert "| 30 | 22.0 | 1200 ms | – | – | 1500 ms (660 requests) | 99% |" in text
    assert "| CPU against the limit (1 core) | 99% |" in text
    for chart in ("rps_p99_vs_users.png", "cpu_vs_users.png", "timeline.png"):
        assert (tmp_path / "cpu-bound" / chart).read_bytes().startswith(b"\x89PNG"), chart
        assert f"]({chart})" in text


def test_the_summary_links_the_breaking_steps_flame_graph_and_says_which_process_and_step_it_covers(tmp_path):
    name = tmp_path / "experiments" / "cpu-bound" / "cpu-bound-20261203T174501Z"
    profile = Profile(
        name.with_suffix(".speedscope.json"),
        name.with_suffix(".svg"),
        "the API's gunicorn master (pid 7) and its workers",
        1000.0,
        1010.0,
        "the breaking step again (30 users)",
    )
    report = build_report("cpu-bound", "native", synthetic_run(), BREAKING_POINT, profile)

    text = write_report(report, tmp_path / "experiments" / "cpu-bound").read_text()

    assert (
        "py-spy recorded the API's gunicorn master (pid 7) and its workers during the breaking step again (30 users)"
        in text
    )
    assert "](cpu-bound-20261203T174501Z.svg)" in text
    assert "](cpu-bound-20261203T174501Z.speedscope.json)" in text
    assert load_report(tmp_path / "experiments" / "cpu-bound").profile == profile.to_json()


def test_a_summary_without_a_profile_says_when_one_is_taken():
    text = summary_markdown(build_report("baseline", "native", synthetic_run(), None))

    assert "No flame graph: `--no-profile` was given" in text


def test_a_written_report_reads_back_as_the_same_report(tmp_path):
    report = build_report("cpu-bound", "compose", synthetic_run(), BREAKING_POINT)
    write_report(report, tmp_path / "cpu-bound")

    again = load_report(tmp_path / "cpu-bound")

    assert again == report
    assert again.measured_steps() == [*BREAKING_POINT["steps"], BREAKING_POINT["breaking_step"]]
    assert again.held() == BREAKING_POINT["last_held"]


def test_a_run_without_a_breaking_point_summary_still_reports(tmp_path):
    report = build_report("baseline", "native", synthetic_run(), None)
    assert "the API pinned to as many cores as its CPU limit" in summary_markdown(report)
    text = write_report(report, tmp_path / "baseline").read_text()
    assert "No breaking-point summary was written." in text


def test_compare_puts_reports_side_by_side_in_one_table_and_one_chart(tmp_path):
    for name in ("baseline", "batching"):
        write_report(build_report(name, "compose", synthetic_run(), BREAKING_POINT), tmp_path / name)

    path = compare(["baseline", "batching"], tmp_path)

    rows = [
        line for line in path.read_text().splitlines() if line.startswith("| baseline") or line.startswith("| batching")
    ]
    assert len(rows) == 2
    assert rows[0].startswith(
        "| baseline | cpu-bound | 0 s | 20 | 20.0 | 790 ms | too few requests (300 requests) | 22.0 | 99% |"
    )
    assert (tmp_path / "comparison.png").read_bytes().startswith(b"\x89PNG")


def test_compare_names_the_missing_report(tmp_path, capsys):
    from experiments.compare import main as compare_main

    assert compare_main(["no-such-run", "--out", str(tmp_path)]) == 1
    assert "make experiment SCENARIO=no-such-run" in capsys.readouterr().err


def test_the_plan_is_sent_as_the_lab_options_of_the_breaking_point_shape():
    form = Plan(start_users=10, step_users=10, step_seconds=15, max_users=60, slo_ms=500).form()
    assert form["shape_class"] == "BreakingPointShape"
    assert (form["bp_start_users"], form["bp_step_users"], form["bp_max_users"], form["slo_ms"]) == (10, 10, 60, 500)
    assert Plan(start_users=10, step_users=10, step_seconds=15, max_users=60).longest() > 6 * 15


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no-such-scenario"], "invalid choice: 'no-such-scenario'"),
        (["baseline", "--step-users", "0"], "--step-users must be at least 1"),
        (["baseline", "--slo-ms", "-5"], "must be positive"),
    ],
)
def test_bad_arguments_are_refused_with_a_message_naming_them(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("cpus", "usable", "cores"),
    [(1, [0, 1], "0"), (0.5, [0, 1], "0"), (1.5, [0, 1, 2, 3], "0,1"), (2, [0, 1], None), (1, [2, 3], "2")],
)
def test_a_native_run_stands_in_for_the_cpu_limit_by_pinning_the_api_to_as_many_cores(cpus, usable, cores):
    assert native_cores(cpus, usable) == cores


@pytest.fixture
def shell(monkeypatch):
    """The shell a native run starts from, with none of compose's variables set unless a test sets them."""
    for name in ("API_CPUS", "API_WORKERS", "LAB_EXTRA_CPU_MS", "LAB_DOWNSTREAM_LATENCY_MS", "LAB_HANDLER_STYLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_native_api_gets_the_scenarios_override_over_compose_yamls_defaults(shell):
    more = api_service("more-workers")
    assert (more.workers, more.cpus) == (2, 2)
    cpu_bound = api_service("cpu-bound")
    assert (cpu_bound.workers, cpu_bound.cpus) == (1, 1)  # ${API_WORKERS} and ${API_CPUS}, from .env
    assert cpu_bound.environment["LAB_EXTRA_CPU_MS"] == "20"
    assert cpu_bound.environment["LAB_HANDLER_STYLE"] == "sync"  # compose.yaml's, the scenario leaves it
    assert api_service("batching").environment["LAB_BATCHING"] == "true"  # YAML's true, written as compose does


def test_a_native_api_takes_the_shells_knobs_over_env_files_as_compose_does(shell):
    shell.setenv("API_WORKERS", "3")
    shell.setenv("API_CPUS", "1.5")
    shell.setenv("LAB_DOWNSTREAM_LATENCY_MS", "40")
    shell.setenv("LAB_EXTRA_CPU_MS", "5")
    service = api_service("cpu-bound")
    assert (service.workers, service.cpus) == (3, 1.5)
    assert service.environment["LAB_DOWNSTREAM_LATENCY_MS"] == "40"
    assert service.environment["LAB_EXTRA_CPU_MS"] == "20"  # the scenario's own value is not a variable
    assert api_service("baseline").cpus == 1  # the baseline sets its own


@pytest.mark.parametrize(
    ("text", "expected"),
    [("${A:-x}", "1"), ("${E:-x}", "x"), ("${U:-x}", "x"), ("${E-x}", ""), ("${U-x}", "x"), ("${U}", ""),
     ("a${A}b${E:-c}", "a1bc")],
)  # fmt: skip
def test_compose_variables_are_substituted_as_compose_does(text, expected):
    assert interpolate(text, {"A": "1", "E": ""}) == expected


def test_a_compose_variable_form_it_does_not_know_is_refused_by_name(shell):
    with pytest.raises(LabError, match="only"):
        interpolate("${A:?must be set}", {})
    shell.setenv("API_WORKERS", "two")
    with pytest.raises(
        LabError, match=r"WEB_CONCURRENCY \(\$\{API_WORKERS:-1\}\) is 'two', which is not a whole number"
    ):
        api_service("cpu-bound")


def test_the_summary_lists_locusts_failures_and_how_many_the_dead_workers_explain():
    run = synthetic_run()
    run.values["lost_requests"] = [0.0] * 6 + [7.0] * 6
    run.values["balancer_retries"] = [0.0] * 6 + [4.0] * 6
    failures = [
        {"method": "POST", "name": "/classify", "error": "CatchResponseError('HTTP 502: <html>Bad Gateway')",
         "occurrences": 2},
        {"method": "POST", "name": "/classify", "error": "CatchResponseError('slower than the SLO of 1000 ms')",
         "occurrences": 5},
        {"method": "POST", "name": "/predict", "error": "CatchResponseError(\"no response: RemoteDisconnected()\")",
         "occurrences": 1},
    ]  # fmt: skip
    report = build_report("memory-bound", "compose", run, {**BREAKING_POINT, "failures": failures})

    assert report.no_answer() == 3  # the 502s and the missing response, not the slow answers
    summary = summary_markdown(report)
    assert "| POST | /classify | CatchResponseError('slower than the SLO of 1000 ms') | 5 |" in summary
    assert "3 of them got no answer from the API" in summary
    assert "The API counts 7 requests held by workers that died: those failures are" in summary
    assert "the balancer sent 4 requests again" in summary


def test_a_run_without_failures_says_so():
    assert "Locust counted no failure." in summary_markdown(
        build_report("baseline", "compose", synthetic_run(), BREAKING_POINT)
    )


def test_the_timeline_marks_an_oom_kill_where_the_counter_rose_across_missing_scrapes():
    from experiments.charts import _increases

    assert _increases([None, 0.0, 0.0, 1.0, None, 1.0, 3.0]) == [3, 6]


def test_the_answer_gives_a_steps_p999_where_it_counted_enough_requests():
    held = {**BREAKING_POINT["last_held"], "requests": 1500, "p999_ms": 980.0}
    text = summary_markdown(
        build_report("cpu-bound", "compose", synthetic_run(), {**BREAKING_POINT, "last_held": held})
    )

    assert "| last step that held | 20 | 20.0 | 790 ms | 980 ms (1,500 requests) | 0.0% |" in text


@pytest.mark.parametrize("users", ["0", "-3"])
def test_screenshots_refuses_fewer_than_one_user_before_starting_a_lab(users, capsys):
    with pytest.raises(SystemExit) as exited:
        screenshots.main(["--users", users])

    assert exited.value.code == 2
    assert f"--users must be at least 1, not {users}" in capsys.readouterr().err


def test_the_start_forms_field_names_are_the_options_in_camel_case():
    assert camel("slo_ms") == "sloMs"
    assert camel("bp_max_failure_ratio") == "bpMaxFailureRatio"
    assert camel("workload") == "workload"
