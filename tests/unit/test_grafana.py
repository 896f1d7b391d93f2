"""Grafana, checked on its files (no Grafana runs here): the dashboard, its provisioning, the settings, start.sh.

What these cannot check, that the queries return data, the integration tier checks against a live Prometheus.
"""

from __future__ import annotations

import configparser
import itertools
import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from grafana.dashboard import DASHBOARD_FILE, assembly, render
from grafana.dashboard.panels import query, timeseries_panel
from lab.grafana import GRAFANA_DIR, annotation_queries, panel_queries, panels, variables
from tests.support.tools import promtool

PROVISIONING = GRAFANA_DIR / "provisioning"
RULES_DIR = GRAFANA_DIR.parent / "prometheus" / "rules"
UNITS = {"reqps", "s", "percentunit", "percent", "bytes", "short", "none", "suffix:cores"}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD_FILE.read_text())


@pytest.fixture(scope="module")
def datasource() -> dict:
    (source,) = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())["datasources"]
    return source


def overlaps(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
    )


def test_the_committed_dashboard_is_what_the_generator_writes():
    assert DASHBOARD_FILE.read_text() == render(), "run `make dashboard` and commit grafana/dashboards/lab.json"


def test_the_generator_refuses_a_panel_that_does_not_fit_its_line(monkeypatch):
    # The SDK's builder starts a new line only once a line is full, so a panel too wide for what is left of its
    # line would stick out of the grid: the generator names it instead of writing such a dashboard.
    wide = [timeseries_panel(f"wide {n}", "a panel two thirds wide", [query("up")], "short", width=16) for n in (1, 2)]
    monkeypatch.setattr(assembly, "ROWS", [SimpleNamespace(TITLE="Too wide", panels=lambda: wide)])
    with pytest.raises(ValueError, match="wide 2: does not fit"):
        assembly.build()


def test_the_dashboard_is_valid_json_with_a_stable_uid_and_title(dashboard):
    assert dashboard["uid"] == "model-serving-lab"
    assert dashboard["title"] == "Model serving lab"
    assert dashboard["schemaVersion"] == 41
    assert "id" not in dashboard


def test_panel_ids_are_unique(dashboard):
    ids = [panel["id"] for panel in panels(dashboard, rows=True)]
    assert len(ids) == len(set(ids))


def test_panels_fit_the_grid_and_do_not_overlap(dashboard):
    boxes = [(panel["title"], panel["gridPos"]) for panel in panels(dashboard, rows=True)]
    for title, box in boxes:
        assert box["w"] > 0, title
        assert box["h"] > 0, title
        assert 0 <= box["x"] <= 24 - box["w"], title
    clashes = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if overlaps(box_a, box_b)]
    assert not clashes


def test_every_query_names_the_provisioned_datasource(dashboard, datasource):
    assert datasource["uid"] == "prometheus"
    for panel in panels(dashboard):
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]
    for item in [*variables(dashboard), *dashboard["annotations"]["list"][1:]]:
        assert item["datasource"]["uid"] == datasource["uid"], item["name"]


def test_every_panel_tells_the_learner_what_to_look_for_and_has_a_unit(dashboard):
    for panel in panels(dashboard):
        assert len(panel.get("description", "")) > 40, f"{panel['title']}: no description"
        assert panel["fieldConfig"]["defaults"]["unit"] in UNITS, panel["title"]
        assert panel["targets"], panel["title"]


def test_the_dashboard_has_the_rows_and_panels_the_lab_promises(dashboard):
    rows = [panel["title"].split(":")[0] for panel in panels(dashboard, rows=True) if panel["type"] == "row"]
    assert rows == [
        "Golden signals", "Diagnosis", "CPU and memory", "Inside the request", "Load generator", "Balancer",
        "Cold start", "Answer cache",
    ]  # fmt: skip
    kinds = {panel["type"] for panel in panels(dashboard)}
    assert {"heatmap", "stat", "state-timeline", "timeseries", "table"} <= kinds
    verdict = next(panel for panel in panels(dashboard) if panel["title"] == "Verdict")
    assert verdict["targets"][0]["expr"] == "job:lab_diagnosis:verdict"


def test_template_variables_are_defined_and_used(dashboard):
    names = {variable["name"] for variable in variables(dashboard)}
    assert names == {"route", "endpoint"}
    used = {name for _, expr in panel_queries(dashboard) for name in re.findall(r"\$(\w+)", expr)}
    assert used - {"__rate_interval"} == names


def test_annotations_mark_changes_in_users_locust_workers_and_api_workers(dashboard):
    queries = dict(annotation_queries(dashboard))
    assert set(queries) == {"Users changed", "Locust workers changed", "API workers changed"}
    assert "locust_users" in queries["Users changed"]
    assert "locust_workers" in queries["Locust workers changed"]
    assert "lab_workers" in queries["API workers changed"]


def test_panels_that_show_the_state_now_ask_for_one_instant_not_the_dashboards_range(dashboard):
    # A stat over a range query reduces each series to a tile of its own: after healthy turned cpu-bound, both
    # verdicts would show for the dashboard's 15 minutes, and the last one would stay after the traffic stopped.
    now_panels = [panel for panel in panels(dashboard) if panel["type"] in {"stat", "gauge", "bargauge", "table"}]
    assert {panel["title"] for panel in now_panels} >= {"Verdict", "What to change"}
    for panel in now_panels:
        for target in panel["targets"]:
            assert (target["instant"], target["range"]) == (True, False), panel["title"]


@pytest.mark.parametrize(
    ("series", "before", "after"), [("locust_users", 20, 0), ("locust_workers", 2, 4), ("lab_workers", 1, 0)]
)
def test_each_annotation_marks_a_change_to_zero_and_back_and_nothing_else(dashboard, tmp_path, series, before, after):
    """Evaluated by promtool: 1 exactly at the scrape where the value changed, 0 (no mark) elsewhere."""
    (expr,) = [query for _, query in annotation_queries(dashboard) if series in query]
    case = {
        "rule_files": [],
        "evaluation_interval": "5s",
        "tests": [
            {
                "interval": "5s",
                "input_series": [{"series": f'{series}{{job="x"}}', "values": f"{before}x10 {after}x10 {before}x10"}],
                "promql_expr_test": [
                    {"expr": expr, "eval_time": f"{t}s", "exp_samples": [{"labels": "{}", "value": value}]}
                    for t, value in [(50, 0), (55, 1), (60, 0), (105, 0), (110, 1), (115, 0)]
                ],
            }
        ],
    }
    path = tmp_path / "annotation_test.yml"
    path.write_text(yaml.safe_dump(case))
    result = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_recorded_series_a_panel_reads_is_a_rule_that_exists(dashboard):
    rules = {
        rule.get("record") or rule.get("alert")
        for path in RULES_DIR.glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    }
    used = {name for _, expr in panel_queries(dashboard) for name in re.findall(r"\b[a-z]+:[a-z_]+:[a-z0-9_]+\b", expr)}
    assert used, "the dashboard reads no recording rule"
    assert used <= rules


def test_the_datasource_is_the_labs_prometheus_at_its_scrape_interval(datasource):
    scrape = yaml.safe_load((GRAFANA_DIR.parent / "prometheus" / "prometheus.yml").read_text())["global"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["isDefault"] is True
    assert datasource["jsonData"]["timeInterval"] == scrape["scrape_interval"]


def test_the_dashboard_provider_loads_the_folder_the_home_dashboard_is_in():
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "lab.yaml").read_text())["providers"]
    settings = configparser.ConfigParser()
    settings.read(GRAFANA_DIR / "grafana.ini")
    home = Path(settings["dashboards"]["default_home_dashboard_path"])

    assert provider["type"] == "file"
    assert home.parent == Path(provider["options"]["path"])
    assert (GRAFANA_DIR / "dashboards" / home.name).is_file()


def test_anonymous_users_are_viewers_and_nobody_signs_up():
    settings = configparser.ConfigParser()
    settings.read(GRAFANA_DIR / "grafana.ini")

    assert settings.getboolean("auth.anonymous", "enabled")
    assert settings["auth.anonymous"]["org_role"] == "Viewer"
    assert not settings.getboolean("users", "allow_sign_up")
    assert "admin_password" not in settings["security"], "the password comes from the environment (start.sh)"


def test_no_custom_unit_starts_with_a_space_that_grafana_would_double():
    """Grafana prints a `suffix:` unit's text after a space of its own: "suffix: cores" renders "1.5  cores"."""
    for panel in panels(json.loads(DASHBOARD_FILE.read_text())):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        assert not re.match(r"(suffix|prefix):\s", unit), (panel["title"], unit)


def test_grafana_installs_no_plugins_from_the_internet_at_start():
    settings = configparser.ConfigParser()
    settings.read(GRAFANA_DIR / "grafana.ini")

    assert settings.getboolean("plugins", "preinstall_disabled")


def test_compose_mounts_each_provisioning_folder_and_leaves_the_images_own_in_place():
    """A mount over /etc/grafana/provisioning would hide the image's plugins/ and alerting/ folders (an ERROR line
    each at every start); each of the lab's folders is mounted on its own instead."""
    compose = yaml.safe_load((GRAFANA_DIR.parent / "compose.yaml").read_text())
    targets = {volume.split(":")[1]: volume.split(":")[0] for volume in compose["services"]["grafana"]["volumes"]}

    assert "/etc/grafana/provisioning" not in targets
    for folder in sorted(path for path in PROVISIONING.iterdir() if path.is_dir()):
        assert targets.get(f"/etc/grafana/provisioning/{folder.name}") == f"./grafana/provisioning/{folder.name}"


def test_every_shell_script_checks_out_with_lf_line_endings_on_any_machine():
    """start.sh is Grafana's entrypoint: with CRLF (a Windows checkout's default) /bin/sh refuses it."""
    repo = GRAFANA_DIR.parent
    scripts = subprocess.run(["git", "ls-files", "*.sh"], cwd=repo, capture_output=True, text=True, check=True)
    names = scripts.stdout.split()
    assert "grafana/start.sh" in names
    attributes = subprocess.run(["git", "check-attr", "eol", "--", *names], cwd=repo, capture_output=True,
                                text=True, check=True).stdout.splitlines()  # fmt: skip
    assert attributes == [f"{name}: eol: lf" for name in names]
    assert all(b"\r\n" not in (repo / name).read_bytes() for name in names)


# --- start.sh: the admin password --------------------------------------------------------------------------


def run_start(data: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """start.sh with a stand-in for Grafana's /run.sh that prints the password it was given."""
    fake_run = data.parent / "run.sh"
    fake_run.write_text('#!/bin/sh\necho "grafana started with $GF_SECURITY_ADMIN_PASSWORD $*"\n')
    fake_run.chmod(0o755)
    environment = {"PATH": "/usr/bin:/bin", "GF_PATHS_DATA": str(data), "GRAFANA_RUN": str(fake_run), **env}
    return subprocess.run(
        ["sh", str(GRAFANA_DIR / "start.sh"), "--flag"], env=environment, capture_output=True, text=True,
        timeout=10, check=True,
    )  # fmt: skip


def test_start_uses_the_password_the_learner_sets(tmp_path):
    (tmp_path / "data").mkdir()
    done = run_start(tmp_path / "data", GRAFANA_ADMIN_PASSWORD="chosen-one")
    assert done.stdout == "grafana started with chosen-one --flag\n"
    assert not (tmp_path / "data" / "lab-admin-password").exists()


def test_start_generates_a_password_once_keeps_it_and_prints_it_once(tmp_path):
    data = tmp_path / "data"
    data.mkdir()

    first = run_start(data)
    second = run_start(data)

    saved = (data / "lab-admin-password").read_text().strip()
    assert re.fullmatch(r"[A-Za-z0-9]{20}", saved)
    assert f"admin password generated: {saved}" in first.stdout
    assert first.stdout.endswith(f"grafana started with {saved} --flag\n")
    assert second.stdout == f"grafana started with {saved} --flag\n"
    assert (data / "lab-admin-password").stat().st_mode & 0o077 == 0


def test_two_fresh_starts_get_different_passwords(tmp_path):
    passwords = set()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        run_start(tmp_path / name)
        passwords.add((tmp_path / name / "lab-admin-password").read_text())
    assert len(passwords) == 2
