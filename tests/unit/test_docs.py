"""The reference tables in docs/ list exactly what the code defines: no knob or metric goes undocumented."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from lab.paths import REPO
from lab.prometheus import advised_command, alerts
from model_api.metrics import SCRAPE_TIME_FAMILIES, ApiMetrics, all_family_names
from model_api.settings import Settings, env_name

DOCS = REPO / "docs"


def table_rows(path: Path, name: str = r"`([A-Za-z_]+)`") -> dict[str, list[str]]:
    """First-column name (in backticks, matching `name`) -> the row's cells, for every Markdown table row."""
    rows = {}
    for line in path.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(name, cells[0]) if line.startswith("|") else None
        if match:
            rows[match.group(1)] = cells
    return rows


def test_every_setting_is_in_the_configuration_table_with_its_default():
    rows = table_rows(DOCS / "configuration.md")

    for name, field in Settings.model_fields.items():
        variable = env_name(name)
        assert variable in rows, f"{variable} is not documented in docs/configuration.md"
        default = field.default
        if isinstance(default, bool):
            assert rows[variable][1] == f"`{str(default).lower()}`", variable
        elif isinstance(default, int | float):
            assert rows[variable][1] == f"`{default:g}`", variable
    assert set(rows) <= {env_name(name) for name in Settings.model_fields}, "documented knobs that do not exist"


def test_every_metric_family_is_in_the_metrics_table_with_its_type_and_labels():
    rows = table_rows(DOCS / "metrics.md")

    assert set(rows) == set(all_family_names())
    for metric in ApiMetrics(CollectorRegistry()).metrics():
        name = f"{metric._name}_total" if metric._type == "counter" else metric._name
        label_names = list(metric._labelnames)
        if getattr(metric, "_multiprocess_mode", "") in ("all", "liveall"):
            label_names.append("pid")  # added per worker by multiprocess mode
        labels = ", ".join(f"`{label}`" for label in label_names) or "none"
        assert rows[name][1:3] == [metric._type, labels], name
    for name, (kind, labels, _) in SCRAPE_TIME_FAMILIES.items():
        assert rows[name][1:3] == [kind, ", ".join(f"`{label}`" for label in labels) or "none"], name


def test_every_locust_option_is_in_the_load_generator_table_with_its_variable_and_default():
    from lab_locust.options import DEFAULTS

    rows = {}
    for line in (DOCS / "load-generator.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `--"):
            rows[cells[0].strip("`")] = cells

    assert set(rows) == {"--" + name.replace("_", "-") for name in DEFAULTS}
    for name, default in DEFAULTS.items():
        row = rows["--" + name.replace("_", "-")]
        assert row[1] == f"`LOCUST_{name.upper()}`"
        assert row[2] == (f"`{default:g}`" if isinstance(default, int | float) else f"`{default}`")


def test_every_exporter_family_is_in_the_load_generator_table():
    from types import SimpleNamespace

    from locust.stats import RequestStats

    from lab_locust.exporter import LocustCollector

    stats = RequestStats(use_response_times_cache=True)
    stats.log_request("POST", "/classify", 10, 1)
    runner = SimpleNamespace(stats=stats, user_count=1, state="running", current_cpu_usage=1.0)
    names = {}
    environment = SimpleNamespace(runner=runner, parsed_options=SimpleNamespace(slo_ms=1000.0))
    for family in LocustCollector(environment).collect():
        names[family.name + ("_total" if family.type == "counter" else "")] = family.type

    rows = {}
    for line in (DOCS / "load-generator.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `locust_"):
            rows[cells[0].strip("`")] = cells[1]
    assert rows == names


def test_every_recording_rule_is_in_the_prometheus_table():
    import yaml

    records = []
    for name in ("recording.yml", "diagnosis.yml"):
        rules = yaml.safe_load((DOCS.parent / "prometheus" / "rules" / name).read_text())
        records += [rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule]

    assert list(table_rows(DOCS / "prometheus.md", r"`([a-z_]+:[a-z0-9_]+:[a-z0-9_]+)`")) == records


def test_every_diagnosis_alert_is_in_the_prometheus_table_with_its_verdict_and_its_advice_word_for_word():
    """The alerts' `advice` labels are the one text of each piece of advice; the docs show them as they are."""
    expected = {name: (rule["expr"].split('"')[1], rule["labels"]["advice"]) for name, rule in alerts().items()}
    rows = table_rows(DOCS / "prometheus.md", r"`(Lab[A-Za-z]+)`")
    assert {name: (cells[1].strip("`"), cells[2]) for name, cells in rows.items()} == expected


def test_every_command_that_adds_locust_workers_during_a_test_is_the_one_the_alert_gives():
    """Without --no-recreate, Compose 2.26 and others recreate the running workers and the test stops: wherever the
    lab tells a learner to scale workers while it runs (--no-deps), it is the alert's command, with a number."""
    command = advised_command("LabLoadGeneratorSaturated")
    pattern = r"=(?:N|\d+) ".join(re.escape(part) for part in command.split("=N "))
    places = [*DOCS.rglob("*.md"), DOCS.parent / "README.md", DOCS.parent / ".env", DOCS.parent / "compose.yaml",
              *(DOCS.parent / "grafana" / "dashboard").glob("*.py")]  # fmt: skip
    found = 0
    for path in places:
        text = re.sub(r"\s*\n\s*#?\s*", " ", path.read_text())  # commands wrapped over lines or comment lines
        for snippet in re.findall(r"docker compose (?:-f \S+ )*up [^`\n]*?--scale locust-worker=\S+[^`\n]*", text):
            if "--no-deps" in snippet:
                found += 1
                bare = re.sub(r"(?:-f \S+ )+", "", snippet)
                assert re.match(pattern, bare), f"{path.name}: {snippet}"
    assert found >= 4, "the scaling guide, the compose guide, troubleshooting and compose.yaml give the command"


def test_the_grafana_guide_lists_every_dashboard_panel_in_its_row():
    import json

    dashboard = json.loads((DOCS.parent / "grafana" / "dashboards" / "lab.json").read_text())
    rows: dict[str, list[str]] = {}
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            current = rows.setdefault(panel["title"].split(":")[0], [])
        else:
            current.append(panel["title"])
    documented = {
        cells[0]: cells[2].split(" · ") for cells in table_rows(DOCS / "grafana.md", r"([A-Z][a-z A-Z]+)").values()
    }
    documented.pop("row", None)
    assert documented == rows


def test_every_env_knob_is_in_the_compose_guide_with_its_default():
    env = dict(
        line.split("=", 1) for line in (DOCS.parent / ".env").read_text().splitlines() if re.match(r"^[A-Z_]+=", line)
    )
    documented = {}
    for line in (DOCS / "compose.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        names = re.findall(r"`([A-Z_]+)`", cells[0]) if line.startswith("| `") else []
        defaults = [d.strip() for d in cells[1].split(",")] if names else []
        for name, default in zip(
            names, defaults if len(defaults) == len(names) else defaults * len(names), strict=True
        ):
            documented[name] = "" if default == "(empty)" else default
    assert documented == env


def test_the_reference_has_every_knob_and_every_metric_in_one_table_each():
    from lab_locust.options import DEFAULTS

    knobs, metrics = set(), set()
    for line in (DOCS / "reference.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 4:
            knobs |= set(re.findall(r"`([A-Z][A-Z_]+)`", cells[0]))
        if line.startswith("| `") and len(cells) == 5:
            metrics.add(cells[0].strip("`"))
    env = {
        line.split("=")[0] for line in (DOCS.parent / ".env").read_text().splitlines() if re.match(r"^[A-Z_]+=", line)
    }

    assert {env_name(name) for name in Settings.model_fields} <= knobs
    assert env <= knobs
    assert {f"LOCUST_{name.upper()}" for name in DEFAULTS} <= knobs
    assert set(all_family_names()) <= metrics
    assert set(table_rows(DOCS / "load-generator.md", r"`(locust_[a-z_]+)`")) <= metrics
