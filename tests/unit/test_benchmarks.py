"""The benchmarks' pure parts: wrk's JSON summary, the machine's CPU use from psutil, the figures each benchmark
derives from its runs, the report, and a failure that ends as one line and an exit code."""

from __future__ import annotations

import json

import psutil
import pytest
import yaml

from benchmarks import api_bench, locust_bench, serving_path, startup
from benchmarks.handler_styles import batching_from_matrix
from benchmarks.harness import REQUEST, Options, stage_breakdown
from benchmarks.instrumentation import InstrumentationResult, summarize
from benchmarks.machine import CpuUse, Machine, busy_warnings, cpu_use
from benchmarks.model_runtimes import compare, onnx_label
from benchmarks.render import render
from benchmarks.report import Report, collect_warnings
from benchmarks.scrape import ScrapeResult, percentile
from benchmarks.serving_path import Row, ServingPathResult
from benchmarks.wrk import Wrk, WrkError, WrkResult, read_summary, result_from_summary, write_lua
from lab.paths import REPO

# What `wrk -t1 -c1 -d1s --latency -s post-x.lua` printed against a server that answers POST with 501: its text
# report, then the line of the done() hook write_lua appends.
WRK_OUTPUT = """Running 1s test @ http://127.0.0.1:18931/
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   521.98us  716.94us   4.26ms   89.74%
    Req/Sec     2.29k   299.39     2.72k    72.73%
  Latency Distribution
     50%  333.00us
     75%  386.00us
     90%    1.27ms
     99%    3.62ms
  2500 requests in 1.10s, 1.32MB read
  Non-2xx or 3xx responses: 2500
Requests/sec:   2273.85
Transfer/sec:      1.20MB
{"duration_us":1099459,"requests":2500,"bytes":1387698,"errors":{"connect":0,"read":0,"write":0,"status":2500,\
"timeout":0},"latency_us":{"min":137,"max":4256,"mean":521.984593837535,"stdev":716.939768974352,"p50":333,"p75":386,\
"p90":1274,"p99":3624,"p99.9":4213}}
"""


def result(label: str, rps: float, cpu_us: float | None = None, p99_ms: float = 10.0, **errors: int) -> WrkResult:
    summary = {
        "duration_us": 2_000_000,
        "requests": round(rps * 2),
        "bytes": 1000,
        "errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0, **errors},
        "latency_us": {"min": 100, "max": 90_000, "mean": 2000.0, "stdev": 10.0, "p50": 1500, "p75": 2000,
                       "p90": 5000, "p99": p99_ms * 1000, "p99.9": 80_000},
    }  # fmt: skip
    run = result_from_summary(summary, label, "/classify", 64, f"wrk {label}")
    run.server_cpu_us_per_request = cpu_us
    return run


def test_wrks_summary_is_the_json_line_its_done_hook_prints_after_the_text_report():
    run = result_from_summary(read_summary(WRK_OUTPUT), "smoke", "/", 1, "wrk ...")

    assert run.requests == 2500
    assert run.duration_s == pytest.approx(1.099459)
    assert run.rps == pytest.approx(2273.85, abs=0.01), "requests over duration, as wrk's Requests/sec"
    assert (run.p50_ms, run.p75_ms, run.p90_ms, run.p99_ms, run.p999_ms) == (0.333, 0.386, 1.274, 3.624, 4.213)
    assert run.avg_ms == pytest.approx(0.522, abs=0.001)
    assert run.max_ms == 4.256
    assert run.bytes == 1387698
    assert run.non_2xx == 2500, "wrk's status errors are the answers above 399"
    assert run.socket_errors == {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    assert (run.errors, run.describe_errors()) == (2500, "2500 non-2xx")


def test_socket_errors_are_counted_by_kind_and_a_missing_mean_is_none():
    summary = json.loads(WRK_OUTPUT.splitlines()[-1])
    summary["errors"] = {"connect": 2, "read": 0, "write": 0, "status": 0, "timeout": 5}
    summary["latency_us"]["mean"] = None  # what the hook writes for NaN

    run = result_from_summary(summary, "x", "/", 1, "wrk")

    assert run.describe_errors() == "2 connect, 5 timeout"
    assert run.errors == 7
    assert run.avg_ms is None


def test_wrk_output_without_the_json_line_is_a_wrk_error_with_the_output():
    text_only = WRK_OUTPUT.split("\n{")[0]
    with pytest.raises(WrkError, match="no JSON summary") as error:
        read_summary(text_only)
    assert "Requests/sec:   2273.85" in str(error.value)


def test_the_wrk_script_posts_the_body_as_json_and_defines_the_summary_hook(tmp_path):
    script = write_lua(tmp_path, "applicant", {"age": 26, "job": "freelance"})

    text = script.read_text()
    assert script.name == "post-applicant.lua"
    assert 'wrk.method = "POST"' in text
    assert 'wrk.body = [==[{"age":26,"job":"freelance"}]==]' in text
    assert "function done(summary, latency, requests)" in text
    assert "latency:percentile(p)" in text


def test_every_wrk_command_runs_the_routes_script_pinned_to_the_clients_core(tmp_path):
    wrk = Wrk({}, {"/classify": tmp_path / "post-applicant.lua"})

    command = wrk.command("http://127.0.0.1:8000", "/classify", 64, 8, core=0)

    assert command[:3] == ["taskset", "-c", "0"]
    assert command[command.index("-s") + 1] == str(tmp_path / "post-applicant.lua")
    assert command[-1] == "http://127.0.0.1:8000/classify"
    with pytest.raises(WrkError, match="no wrk script for /metrics"):
        wrk.command("http://127.0.0.1:8000", "/metrics", 1, 1, core=None)


def psutil_shares(**shares: float):
    """A value of the type psutil.cpu_times_percent() returns on this platform, every share 0 unless given."""
    kind = type(psutil.cpu_times_percent(interval=None))
    return kind(**{name: shares.get(name, 0.0) for name in kind._fields})


def test_busy_cpu_is_everything_but_idle_and_io_wait_and_steal_is_reported_apart():
    use = CpuUse.from_shares(psutil_shares(user=18.0, system=4.0, idle=70.0, iowait=5.0, steal=3.0), (0.5, 0.4, 0.3))

    assert (use.busy_pct, use.steal_pct) == (25.0, 3.0)


def test_the_machines_cpu_use_over_a_window_is_a_share_of_all_cpus():
    use = cpu_use(window=0.2)

    assert 0.0 <= use.steal_pct <= use.busy_pct <= 100.0
    assert len(use.load_average) == 3


def machine(before_pct: float, after_pct: float | None) -> Machine:
    load = (0.0, 0.0, 0.0)
    after = None if after_pct is None else CpuUse(after_pct, 0.0, load)
    return Machine(2, "cpu", "6.1", "3.11", "wrk 4.1", {}, CpuUse(before_pct, 0.0, load), after)


def test_a_machine_busy_with_others_before_or_after_the_run_is_warned_about():
    assert busy_warnings(machine(12.0, 3.0)) == [
        "the machine was 12% busy before the run (other processes): the numbers are noisy"
    ]
    assert busy_warnings(machine(3.0, None)) == []


def test_the_metric_cost_is_judged_as_a_share_of_the_median_server_cpu_with_metrics_on():
    on = [result("metrics on #1", 300, 3600), result("metrics on #2", 280, 4000), result("metrics on #3", 310, 3800)]
    off = [
        result("metrics off #1", 320, 3400),
        result("metrics off #2", 330, 3500),
        result("metrics off #3", 250, 3300),
    ]
    runs = [run for pair in zip(on, off, strict=True) for run in pair]  # alternating, as they run

    summary = summarize(runs, metric_us_per_request=38.0)

    assert (summary.median_rps_on, summary.median_rps_off) == (300, 320)
    assert (summary.rps_range_on, summary.rps_range_off) == ((280, 310), (250, 330))
    assert summary.median_cpu_us_on == 3800
    assert summary.metric_share_pct == pytest.approx(1.0)
    assert summary.met


def test_batching_is_the_ratio_of_the_two_async_points_at_64_connections():
    matrix = [result("async c=16", 70), result("async c=64", 62), result("async+batching c=64", 988, p99_ms=84)]

    batching = batching_from_matrix(matrix)

    assert batching.ratio == pytest.approx(988 / 62)
    assert batching.ratio_met
    assert batching.p99_met


def test_an_onnx_point_is_paired_with_the_matrix_s_scikit_learn_point_of_the_same_style_and_connections():
    matrix = [result("async c=1", 150), result("async c=64", 62), result("async+batching c=64", 988)]

    comparison = compare(matrix, "async+batching", 64, result(onnx_label("async+batching", 64), 1976))

    assert comparison.sklearn.label == "async+batching c=64"
    assert comparison.rps_ratio == pytest.approx(2.0)
    assert comparison.p50_ratio == pytest.approx(1.0)


def test_the_report_shows_onnx_beside_scikit_learn_and_warns_of_the_onnx_runs_errors(tmp_path):
    options = Options(duration_s=2, warmup_s=1, repeats=1, scrapes=50, model_dir=tmp_path, quick=True)
    report = Report("2026-01-01T00:00:00+00:00", machine(3.0, 3.0), options)
    report.matrix = [result("async c=64", 62)]
    report.runtimes = [compare(report.matrix, "async", 64, result(onnx_label("async", 64), 93, timeout=2))]

    report.warnings = collect_warnings(report)
    text = render(report)

    assert report.warnings == ["async onnx c=64 (/classify): 2 timeout"]
    assert "| async | 64 | 62 | 93 | 1.50x | 1.50 | 1.50 | 1.00x | 10.00 | 10.00 | 2 timeout |" in text
    assert "wrk async onnx c=64" in text.split("## wrk command lines")[1]
    assert json.loads(report.to_json())["runtimes"][0]["onnx"]["rps"] == 93


@pytest.mark.parametrize(("count", "p", "expected"), [(50, 99, 50), (200, 99, 198), (50, 50, 25), (1, 99, 1)])
def test_scrape_percentiles_are_nearest_rank(count, p, expected):
    assert percentile([float(n) for n in range(count, 0, -1)], p) == expected


def test_the_report_warns_of_every_error_and_missed_target_and_lists_the_commands(tmp_path):
    options = Options(duration_s=2, warmup_s=1, repeats=1, scrapes=50, model_dir=tmp_path, quick=True)
    report = Report("2026-01-01T00:00:00+00:00", machine(3.0, 3.0), options)
    report.matrix = [result("async c=64", 62, read=3), result("async+batching c=64", 400, p99_ms=200)]
    report.batching = batching_from_matrix(report.matrix)

    report.warnings = collect_warnings(report)
    text = render(report)

    assert report.warnings == [
        "async c=64 (/classify): 3 read",
        "batching gained 6.5x (target >= 10x)",
        "batched P99 200 ms (target < 150 ms)",
    ]
    assert "| async | 64 | 62 | 1.50 | 5.00 | 10.00 | 3 read |" in text
    assert "|---|---:|---:|---:|---:|---:|---:|" in text
    assert "wrk async+batching c=64" in text.split("## wrk command lines")[1]
    assert json.loads(report.to_json())["matrix"][1]["p999_ms"] == 80.0


@pytest.mark.parametrize(
    ("bench", "name", "tool"), [(api_bench, "api_bench", "wrk"), (locust_bench, "locust_bench", "nginx")]
)
def test_a_missing_tool_ends_the_benchmark_with_one_line_and_exit_code_1(
    bench, name, tool, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing installed

    assert bench.main(["--out-dir", str(tmp_path)] if bench is api_bench else []) == 1

    err = capsys.readouterr().err
    assert err.startswith(f"{name}: {tool} is not installed (Debian package: ")
    assert err.count("\n") == 1


def serving_path_run(bentoml: WrkResult | None) -> ServingPathResult:
    rows = [
        Row(serving_path.CEILING, result("ceiling", 10_000)),
        Row(serving_path.HEALTHZ, result("healthz", 6000)),
        Row(serving_path.SKLEARN_UNBATCHED, result("async c=64", 100, p99_ms=900)),
        Row(serving_path.SKLEARN_BATCHED, result("async+batching c=64", 1480)),
        Row(serving_path.ONNX_UNBATCHED, result("async onnx c=64", 3500, read=2)),
        Row(serving_path.ONNX_BATCHED, result("async+batching onnx c=64", 4200)),
        Row(serving_path.SKLEARN_BATCHED_NO_METRICS, result("no metrics", 1500)),
        Row(serving_path.BENTOML, bentoml, "" if bentoml else "make bentoml-install first"),
    ]
    run = ServingPathResult(rows=rows, locust_rps=7000.0, locust_cpu_pct=99.0)
    run.targets = serving_path.targets(run)
    return run


def test_the_serving_paths_targets_are_ratios_of_one_run_and_a_slow_or_failing_point_misses():
    run = serving_path_run(bentoml=result("bentoml", 200))
    targets = {t.name: t for t in run.targets}

    batched = targets["batched scikit-learn, share of the ceiling"]
    assert (batched.measured, batched.met) == (pytest.approx(0.148), False)
    onnx = targets["unbatched ONNX, share of the ceiling"]
    assert onnx.measured == pytest.approx(0.35)  # over the bar, but 2 read errors: missed
    assert (onnx.met, onnx.conditions) == (False, ["2 read errors"])
    assert targets["batched scikit-learn over BentoML's adaptive batching"].measured == pytest.approx(7.4)
    assert targets["batched scikit-learn over BentoML's adaptive batching"].met
    locust = targets["one Locust process over the best single-core API figure"]
    assert locust.measured == pytest.approx(7000 / 4200)  # the best API row, not the ceiling or /healthz
    assert locust.met


def test_without_bentoml_its_row_says_why_and_its_target_is_not_measured():
    run = serving_path_run(bentoml=None)
    target = next(t for t in run.targets if "BentoML" in t.name)

    assert (target.measured, target.met) == (None, False)
    text = serving_path.render_serving_path(run, metric_us=30.0, chart=None)
    assert "| BentoML, adaptive batching, scikit-learn | – | – | – | – | – | make bentoml-install first |" in text
    assert "| the lab's API, batched scikit-learn | 1,480 | 0.148 |" in text
    assert (
        "| batched scikit-learn over BentoML's adaptive batching | – | >= 6.00x | – | **missed** (BentoML not" in text
    )


def test_the_stage_breakdown_is_the_difference_of_two_scrapes_per_request_of_the_route():
    def scrape(requests: float, seconds: float, validation: float, inference: float) -> dict:
        return {
            ("lab_http_request_duration_seconds_count", (("route", "/classify"),)): requests,
            ("lab_http_request_duration_seconds_sum", (("route", "/classify"),)): seconds,
            ("lab_http_request_duration_seconds_count", (("route", "/predict"),)): 99.0,
            ("lab_request_stage_duration_seconds_sum", (("route", "/classify"), ("stage", "validation"))): validation,
            ("lab_request_stage_duration_seconds_sum", (("route", "/classify"), ("stage", "inference"))): inference,
        }

    stages = stage_breakdown(scrape(10, 1.0, 0.1, 0.2), scrape(1010, 11.0, 0.2, 1.2), "/classify")

    assert stages == pytest.approx({REQUEST: 10.0, "inference": 1.0, "validation": 0.1})
    assert serving_path.breakdown(stages)["outside the stages"] == pytest.approx(8.9)
    assert stage_breakdown(None, scrape(1, 1, 1, 1), "/classify") is None  # a server without the lab's metrics


def test_the_serving_path_chart_is_a_png_file_and_needs_two_servers_to_compare(tmp_path):
    path = serving_path.chart(serving_path_run(bentoml=None), tmp_path / "chart.png")
    lonely = ServingPathResult(rows=[Row(serving_path.CEILING, result("ceiling", 10_000))])

    assert path == tmp_path / "chart.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert serving_path.chart(lonely, tmp_path / "lonely.png") is None


def test_the_metric_cost_and_the_scrape_time_join_the_targets_from_their_own_benchmarks():
    instrumentation = InstrumentationResult(metric_share_pct=2.0)
    scrape = ScrapeResult(4, 50, 20.0, 60.0, 70.0, 2, 40_000, [], [])

    found = {t.name: t for t in serving_path.targets(serving_path_run(None), instrumentation, scrape)}

    metric = found["metric work, share of a request's server CPU (benchmark 1)"]
    assert (metric.measured, metric.met, serving_path._target_row(metric)[1:3]) == (0.02, True, ["2.0%", "<= 3.0%"])
    scrape_time = found["/metrics P99 with 4 workers under load, ms (benchmark 3)"]
    assert (scrape_time.measured, scrape_time.met) == (60.0, False)


def test_the_startup_benchmark_retags_every_service_that_runs_an_image_the_lab_builds():
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())

    tags = startup.bench_images(compose)

    assert tags == {
        "api": f"model-serving-lab/api:{startup.BENCH_TAG}",
        "locust-master": f"model-serving-lab/locust:{startup.BENCH_TAG}",
        "locust-worker": f"model-serving-lab/locust:{startup.BENCH_TAG}",
    }


def test_the_startup_benchmark_lists_each_base_image_a_fresh_machine_pulls_once():
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())

    bases = startup.base_images(compose)

    assert len(bases) == len(set(bases))
    assert {"locustio/locust:2.47.0", "haproxy:3.2.6"} <= set(bases)
    assert not any(base.startswith("model-serving-lab/") for base in bases)
