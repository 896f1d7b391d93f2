"""The lab on a real Docker engine: compose files valid, the stack up and scraped, a swarm through the
balancer, scaling during a swarm, a knob changed, reports written whoever runs Docker, limits, a profile taken
inside an API container.

One lab for the whole module (two API replicas, two Locust workers); the tests run in file order and the last
one stops it. Grafana joins only where its image is present (no registry here, and no stand-in for it).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tempfile
from pathlib import Path

import httpx2
import pytest

from grafana.dashboard import DASHBOARD_FILE
from lab.browser import GrafanaScreen, LocustScreen, firing_verdict_alert, new_page
from lab.compose import GRAFANA_IMAGE, ComposeLab
from lab.errors import WaitTimeout
from lab.exposition import parse, total
from lab.grafana import panel_queries, panels, template_values
from lab.paths import REPO
from lab.polling import wait_for
from lab.profiling import compose_target, read_speedscope, record
from lab.prometheus import advised_command, compose_only, recorded_series
from lab.scenarios import api_service
from model_api.vocabulary import MODEL_ROUTES_REGEX
from tests.support import screens
from tests.support.compose import build_images, require_docker, running_lab
from tests.support.course import COURSE_LOCUSTFILE, COURSE_USER

# The module's lab starts in its first test: the image build on a fresh machine, then compose up.
pytestmark = pytest.mark.timeout(900)

SCENARIOS = sorted(path.stem for path in (REPO / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("scenario", [None, *SCENARIOS], ids=lambda s: s or "compose.yaml alone")
def test_docker_compose_config_is_valid(scenario):
    require_docker()
    files = ["-f", "compose.yaml", *(["-f", f"scenarios/{scenario}.yaml"] if scenario else [])]
    done = subprocess.run(
        ["docker", "compose", *files, "config", "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_native_run_gives_the_api_what_compose_gives_it(scenario, monkeypatch):
    """The native experiment reads compose.yaml, the override and the variables itself: it must agree with compose."""
    require_docker()
    monkeypatch.setenv("API_WORKERS", "3")  # a knob from the shell wins over .env, unless the scenario pins it
    monkeypatch.setenv("LAB_DOWNSTREAM_JITTER_MS", "7")
    monkeypatch.setenv("LAB_BATCH_MAX_WAIT_MS", "")  # set but empty: ${VAR:-default} takes the default
    files = ["-f", "compose.yaml", "-f", f"scenarios/{scenario}.yaml"]
    done = subprocess.run(
        ["docker", "compose", *files, "config", "--format", "json"], cwd=REPO, env=os.environ, capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip
    api = json.loads(done.stdout)["services"]["api"]
    native = api_service(scenario)
    assert {**native.environment, "WEB_CONCURRENCY": str(native.workers)} == api["environment"]
    assert native.cpus == float(api["cpus"])


@pytest.fixture(scope="module")
def images():
    build_images()


@pytest.fixture(scope="module")
def lab(images):
    with running_lab("lab-test", scale={"api": 2, "locust-worker": 2}) as running:
        yield running


def test_prometheus_scrapes_both_api_replicas_the_balancer_and_the_locust_exporter(lab: ComposeLab):
    def targets():
        up = lab.query("up")
        jobs = [(s["metric"]["job"], s["value"][1]) for s in up]
        wanted = jobs.count(("model-api", "1")) == 2 and {("locust", "1"), ("balancer", "1")} <= set(jobs)
        return jobs if wanted and ("prometheus", "1") in jobs else None

    jobs = wait_for(targets, 90, "two API targets, the balancer, the Locust exporter and Prometheus up", interval=1)
    assert sorted(job for job, _ in jobs) == ["balancer", "locust", "model-api", "model-api", "prometheus"]


@pytest.mark.browser
def test_a_swarm_started_from_locusts_form_is_counted_on_its_screens_and_prometheus_shows_targets_and_alert(
    lab: ComposeLab, chromium
):
    """As a learner: Locust's form with the lab's fields and defaults, Start; the statistics fill without
    errors (only responses slower than the SLO may fail), the charts draw, the header counts both workers;
    Prometheus' pages show every target up and the verdict's alert with its summary; Stop."""
    locust = LocustScreen(new_page(chromium, lab.locust_url))
    every_target_up = {"balancer": (1, 1), "locust": (1, 1), "model-api": (2, 2), "prometheus": (1, 1)}
    try:
        screens.check_a_swarm_from_the_form(locust, lab, chromium, every_target_up, workers=2, users=10, spawn_rate=10)
    finally:
        locust.stop()
    screens.check_the_swarm_stopped(locust, lab)


@pytest.mark.browser
@pytest.mark.grafana
def test_grafana_opens_the_lab_dashboard_to_an_anonymous_viewer_and_every_panel_has_data_under_a_swarm(
    lab: ComposeLab, chromium
):
    """No login: the home page is the lab's dashboard. Under a swarm, every panel's queries answer through
    Grafana's own query API with no error, and with data unless the panel says why it has none (a knob the default
    lab leaves off); the Verdict panel shows one word."""
    url = screens.require_grafana_image(lab, GRAFANA_IMAGE)
    wait_for(lambda: lab.value("max(locust_workers)") == 2, 90, "the exporter to report 2 workers", interval=1)
    lab.start_swarm(user_count=10, spawn_rate=10)
    try:
        firing_verdict_alert(lab)  # the verdict's windows are full: every panel can have data
        grafana = GrafanaScreen(new_page(chromium, url), url)
        dashboard = json.loads(DASHBOARD_FILE.read_text())
        assert grafana.title() == dashboard["title"], "the home page is the dashboard"
        assert not grafana.login_form_shown()
        values = template_values(dashboard, lab.prometheus.label_values)  # each variable set to All
        # A panel whose series exist only with a knob the default lab leaves off (the cache, batching, a
        # downstream wait) says so in place of "No data".
        explained = {  # the panels whose word for no data names the knob that is off
            panel["title"] for panel in panels(dashboard)
            if "LAB_" in panel.get("fieldConfig", {}).get("defaults", {}).get("noValue", "")
        }  # fmt: skip
        failed = grafana.panels_without_data(dashboard, values)
        unexplained = {
            name: why for name, why in failed.items() if why != "no data" or name.rsplit(" [", 1)[0] not in explained
        }
        assert not unexplained, f"panels with an error, or No data and no word why: {unexplained}"
        verdict = grafana.stat_text("Verdict")
        assert len(verdict.split()) == 1, f"the Verdict panel shows {verdict!r}"
    finally:
        lab.stop_swarm()


def test_a_distributed_swarm_is_counted_by_the_api_and_the_exporter(lab: ComposeLab):
    wait_for(lambda: lab.value("max(locust_workers)") == 2, 90, "the exporter to report 2 workers", interval=1)

    lab.swarm(users=10, spawn_rate=5, seconds=20)

    served = wait_for(
        lambda: lab.value(f'sum(lab_http_requests_total{{route=~"{MODEL_ROUTES_REGEX}"}})'),
        30,
        "API requests",
        interval=1,
    )
    sent = wait_for(lambda: lab.value("sum(locust_requests_total)"), 30, "Locust requests", interval=1)
    assert served > 0
    assert sent > 0
    assert lab.value("max(locust_workers)") == 2
    replicas = lab.query(f'sum by (instance) (lab_http_requests_total{{route=~"{MODEL_ROUTES_REGEX}"}})')
    assert len(replicas) == 2, "both API replicas served requests"
    stats = (lab.reports / "run_stats.csv").read_text()
    assert "/classify" in stats, "the master wrote its CSV report to the bind-mounted folder"


def test_containers_run_as_non_root_and_bind_the_host_to_127_0_0_1(lab: ComposeLab):
    for service in ["api", "balancer", "prometheus", "locust-master"]:
        container = lab.container_ids(service)[0]
        user = subprocess.run(
            ["docker", "exec", container, "id", "-u"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        assert user != "0", f"{service} runs as root"
    ports = lab.compose("ps", "--format", "{{.Publishers}}").stdout
    assert "0.0.0.0" not in ports
    assert "127.0.0.1" in ports


def test_each_api_replica_has_the_cpu_limit_from_env_and_its_metrics_in_a_tmpfs(lab: ComposeLab):
    limits = wait_for(lambda: (r := lab.query("lab_container_cpu_limit_cores")) and len(r) == 2 and r, 60, "limits")
    assert [float(series["value"][1]) for series in limits] == [1.0, 1.0]
    container = lab.container_ids("api")[0]
    mounts = subprocess.run(
        ["docker", "exec", container, "python", "-c", "print(open('/proc/mounts').read())"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert re.search(r"^tmpfs /tmp/prometheus-multiproc tmpfs ", mounts, re.M), mounts


def test_locust_does_not_warn_about_the_open_file_limit(lab: ComposeLab):
    logs = lab.compose("logs", "--no-color", "locust-master", "locust-worker").stdout
    assert "Starting Locust" in logs
    assert "open file limit" not in logs


def replica_requests(lab: ComposeLab) -> list[float]:
    """Requests to the model routes that each API replica counted, read from the replica itself (its own port)."""
    counts = []
    for index in range(1, len(lab.container_ids("api")) + 1):
        address = lab.compose("port", "--index", str(index), "api", "8000").stdout.strip()
        samples = parse(httpx2.get(f"http://{address}/metrics", timeout=10).text)
        counts.append(total(samples, "lab_http_requests_total", route="/classify")
                      + total(samples, "lab_http_requests_total", route="/predict"))  # fmt: skip
    return counts


def test_the_balancer_spreads_a_swarm_evenly_over_both_replicas(lab: ComposeLab):
    """Through the balancer (least connections, per request), each replica serves within 10% of the other.

    The load is light (cheap /predict requests) so that a request mostly finds both replicas idle and the
    split shows the balancer's choice; under heavy load, least connections rightly favours the faster one."""
    before = replica_requests(lab)
    lab.swarm(users=20, spawn_rate=10, seconds=30, user_classes=["HousePriceUser"])
    sent = lab.locust_stats()["stats"][-1]["num_requests"]
    served = wait_for(
        lambda: (d := [a - b for a, b in zip(replica_requests(lab), before, strict=True)]) and sum(d) >= sent and d,
        30, f"the replicas to count the {sent} requests Locust sent", interval=1,
    )  # fmt: skip
    assert len(served) == 2
    assert min(served) >= 0.9 * max(served), f"requests per replica: {served}"


def test_every_balancer_and_oom_rule_and_panel_query_returns_data(lab: ComposeLab):
    """HAProxy runs, and the API has a memory limit, only in the compose lab: the rules and panels that read the
    balancer or the OOM kills are checked here, not in the native lab."""
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    queries = [*recorded_series(), *(expr for _, expr in panel_queries(dashboard))]
    compose = [q.replace("$__rate_interval", "30s") for q in queries if compose_only(q)]
    assert any("haproxy" in q for q in compose), "the dashboard and the rules read the balancer"
    assert any("oom_kills" in q for q in compose), "the dashboard and the rules read the OOM kills"
    for query in compose:
        assert wait_for(lambda q=query: lab.query(q), 60, f"{query} to return data", interval=1)


def test_scaling_locust_workers_as_the_alert_advises_keeps_a_running_swarm_running(lab: ComposeLab):
    lab.start_swarm(user_count=12, spawn_rate=12)
    wait_for(lambda: (s := lab.locust_stats())["state"] == "running" and s["user_count"] == 12, 60, "12 users")
    (master,) = lab.container_ids("locust-master")
    started, workers, apis = lab.started_at(master), lab.container_ids("locust-worker"), lab.container_ids("api")

    command = advised_command("LabLoadGeneratorSaturated").replace("locust-worker=N", "locust-worker=4")
    lab.compose(*shlex.split(command)[2:])

    seen: list[list[tuple[str, int]]] = []

    def four_workers_sharing_the_users():
        stats = lab.locust_stats()
        # "spawning" while the master rebalances the users onto the new workers; anything else means it stopped
        assert stats["state"] in {"running", "spawning"}, f"the swarm stopped: {stats['state']}"
        seen.append([(w["state"], w["user_count"]) for w in stats["workers"]])
        running = [w for w in stats["workers"] if w["state"] == "running"]
        return len(running) == 4 and sum(w["user_count"] for w in running) == 12 and stats

    try:
        wait_for(four_workers_sharing_the_users, 90, "4 workers running the 12 users", interval=1)
    except WaitTimeout as timeout:
        raise AssertionError(f"{timeout}; the workers (state, users) at the last polls: {seen[-3:]}") from None
    sent = lab.locust_stats()["stats"][-1]["num_requests"]
    wait_for(lambda: lab.locust_stats()["stats"][-1]["num_requests"] > sent + 20, 30, "requests to keep flowing")
    assert lab.locust_stats()["state"] == "running"
    assert set(workers) <= set(lab.container_ids("locust-worker")), "the running workers were not recreated"
    assert lab.container_ids("locust-master") == [master]
    assert lab.started_at(master) == started
    assert lab.container_ids("api") == apis
    lab.stop_swarm()


def test_changing_an_api_knob_keeps_the_apis_address_and_leaves_locust_alone(lab: ComposeLab):
    (master,) = lab.container_ids("locust-master")
    locust = {c: lab.started_at(c) for c in [master, *lab.container_ids("locust-worker")]}
    apis = lab.container_ids("api")

    lab.compose("up", "-d", "--scale", "api=2", "api", env={"LAB_HANDLER_STYLE": "async"})

    def ready_with_the_new_knob():
        return {httpx2.get(f"{lab.api_url}/readyz", timeout=5).json()["handler_style"] for _ in range(6)} == {"async"}

    wait_for(ready_with_the_new_knob, 120, f"{lab.api_url} to answer from the recreated replicas", interval=1)
    assert not set(apis) & set(lab.container_ids("api")), "the API replicas were recreated"
    assert {c: lab.started_at(c) for c in locust} == locust, "the Locust master and workers kept running"


def test_a_master_that_cannot_write_the_reports_folder_stays_up_and_says_where_they_went(lab: ComposeLab):
    with tempfile.TemporaryDirectory(prefix="locked-reports-") as locked:
        Path(locked).chmod(0o755)  # owned by whoever runs the tests; the master runs as another user
        done = lab.compose("run", "-d", "--no-deps", "locust-master",
                           env={"LOCUST_REPORTS": locked, "LAB_UID": "4242", "LAB_GID": "4242"})  # fmt: skip
        container = done.stdout.strip().splitlines()[-1]
        try:

            def logs() -> str:
                return subprocess.run(["docker", "logs", container], capture_output=True, text=True, timeout=30).stderr

            wait_for(lambda: "Starting web interface" in logs(), 60, "the master's web interface")
            assert "cannot write reports to /home/locust/reports" in logs()
            listing = subprocess.run(["docker", "exec", container, "ls", "/tmp/lab-reports"], capture_output=True,
                                     text=True, timeout=30, check=True).stdout.split()  # fmt: skip
            assert "run_stats.csv" in listing
            state = lab.state(container)
            assert state["Running"], state
            assert not list(Path(locked).iterdir())
        finally:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60, check=False)


def test_a_learners_own_plain_locustfile_runs_in_the_lab_and_is_counted_like_the_labs(lab: ComposeLab, tmp_path):
    """LOCUST_LOCUSTFILE=mine/course.py, the course's plain HttpUser in a folder of the learner's (LOCUST_MINE):
    swarmed from the master's web API, its requests reach Prometheus through the lab's plugin, and the API
    counted them too."""
    mine = tmp_path / "mine"
    mine.mkdir()
    mine.chmod(0o755)  # read by the container's user, not the test's
    course = mine / "course.py"
    course.write_text(COURSE_LOCUSTFILE.read_text())
    course.chmod(0o644)
    env = {"LOCUST_LOCUSTFILE": "mine/course.py", "LOCUST_MINE": str(mine)}
    served = 'sum(lab_http_requests_total{route="/classify"})'
    try:
        lab.compose("up", "-d", "--no-deps", "--wait", "locust-master", "locust-worker", env=env, timeout=300)
        wait_for(lambda: len(lab.locust_stats()["workers"]) == 2, 90, "both workers to join the master", interval=1)
        before = lab.value(f"{served} or vector(0)")  # none yet where the replicas are new (a knob changed)

        lab.swarm(users=10, spawn_rate=10, seconds=15, user_classes=[COURSE_USER])
        stopped = lab.value("vector(time())")

        def scraped_since_the_stop(series: str) -> float | None:
            scraped = lab.value(f"min(timestamp({series}))")
            return lab.value(f"sum({series})") if scraped and scraped > stopped + 1 else None

        sent = wait_for(lambda: scraped_since_the_stop('locust_requests_total{endpoint="/classify"}'), 30,
                        "the exporter's count of the course user's /classify requests", interval=1)  # fmt: skip
        counted = wait_for(lambda: scraped_since_the_stop('lab_http_requests_total{route="/classify"}'), 30,
                           "the API's count after the swarm", interval=1)  # fmt: skip
        assert sent > 20
        # Every request Locust counted was answered and counted by the API; a request cut short when the swarm
        # stopped is answered too but counted by no one on the client's side (at most one per user).
        assert sent <= counted - before <= sent + 10
    finally:  # the lab's own locustfile again, its workers joined, for the tests that follow
        lab.compose("up", "-d", "--no-deps", "--wait", "locust-master", "locust-worker", timeout=300)
        wait_for(lambda: len(lab.locust_stats()["workers"]) == 2, 90, "both workers to rejoin the master", interval=1)


def test_a_locustfile_that_is_not_there_is_named_in_the_masters_log_and_the_rest_keeps_running(lab: ComposeLab):
    done = lab.compose("run", "-d", "--no-deps", "locust-master", env={"LOCUST_LOCUSTFILE": "mine/no_such_file.py"})
    container = done.stdout.strip().splitlines()[-1]
    try:
        wait_for(lambda: not lab.state(container)["Running"], 60, "the master to stop on its missing locustfile")
        log = subprocess.run(["docker", "logs", container], capture_output=True, text=True, timeout=30).stderr
        assert "lab-locust: ERROR: cannot load the locustfile(s) 'mine/no_such_file.py,lab_plugin.py,shapes'" in log
        assert "mine/no_such_file.py: no such file" in log
        assert lab.state(container)["ExitCode"] == 2
        assert httpx2.get(f"{lab.api_url}/readyz", timeout=5).status_code == 200, "the API keeps running"
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60, check=False)


def test_a_profile_taken_inside_an_api_container_under_a_swarm_shows_its_workers_predicting(lab: ComposeLab, tmp_path):
    """py-spy from the API image, as root with SYS_PTRACE, records gunicorn (PID 1) and its workers; both files
    are copied out of the container."""
    wait_for(lambda: lab.value("max(locust_workers)") == 2, 90, "the exporter to report 2 workers", interval=1)
    lab.start_swarm(user_count=10, spawn_rate=10, user_classes=["CreditRiskUser"])
    try:
        wait_for(lambda: lab.locust_stats()["user_count"] == 10, 60, "10 users")

        profile = record(compose_target(lab, "api"), 4, tmp_path, "compose")
    finally:
        lab.stop_swarm()

    samples = read_speedscope(profile.speedscope)
    assert samples.share(lambda frame: frame.name == "UvicornWorker.run") > 0, "no worker was recorded"
    assert samples.share(lambda frame: frame.name == "ForestClassifier.predict_proba") > 0
    assert profile.svg.read_text().lstrip().startswith("<?xml")


def test_stopping_a_swarming_lab_writes_the_html_and_csv_reports(lab: ComposeLab):
    """Last in this module: it stops the lab."""
    for earlier in lab.reports.glob("*.html"):  # written when earlier tests restarted the master
        earlier.unlink()
    lab.start_swarm(user_count=10, spawn_rate=10)

    def classify_counted() -> bool:
        stats = lab.locust_stats()["stats"]
        return any(entry["name"] == "/classify" and entry["num_requests"] > 0 for entry in stats)

    wait_for(classify_counted, 60, "the master to count /classify requests (workers report every 3 s)")
    assert not list(lab.reports.glob("*.html")), "Locust writes its HTML report only when it stops"

    lab.compose("stop", timeout=300)

    (html,) = lab.reports.glob("report-*users.html")
    assert "/classify" in html.read_text()
    assert "/classify" in (lab.reports / "run_stats.csv").read_text()
