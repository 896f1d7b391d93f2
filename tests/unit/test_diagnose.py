"""`make diagnose`: its thresholds are the rules' own, and a lab that is not running is said so in one line."""

from __future__ import annotations

import re
import socket

import pytest
import yaml

from experiments.diagnose import EVIDENCE, main, report
from lab.paths import RULES_DIR

RULES = RULES_DIR


def normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_every_threshold_shown_is_a_comparison_the_diagnosis_rules_make_word_for_word():
    diagnosis = normalized((RULES / "diagnosis.yml").read_text())
    compared = [item for item in EVIDENCE if item.rule]
    assert len(compared) >= 12
    for item in compared:
        assert normalized(item.rule) in diagnosis, item.name
        assert item.threshold is not None, item.name


def test_the_threshold_is_read_from_the_rule_and_marks_what_crosses_it():
    cpu = next(item for item in EVIDENCE if item.expr == "max(instance:lab_cpu_utilization:ratio_rate30s)")
    assert cpu.threshold == (">", 0.75)
    assert cpu.describe() == "> 75%"
    assert cpu.crossed(0.8)
    assert not cpu.crossed(0.75)


def test_every_series_shown_is_recorded_by_a_rule_or_exposed_by_a_component():
    recorded = {
        rule["record"]
        for path in RULES.glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    for item in EVIDENCE:
        for name in re.findall(r"\b[a-z]+:[a-z_]+:[a-z0-9_]+\b", item.expr):
            assert name in recorded, f"{item.name}: {name}"


def test_a_lab_that_is_not_running_is_said_so_with_what_to_do(capsys):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens on it once closed

    assert main(["--prometheus", f"http://127.0.0.1:{port}"]) == 1

    error = capsys.readouterr().err
    assert f"cannot reach the lab's Prometheus at http://127.0.0.1:{port}" in error
    assert "docker compose up" in error


@pytest.mark.parametrize("argv", [["--every", "soon"]])
def test_a_bad_option_is_refused_by_name(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert "--every" in capsys.readouterr().err


class StillPrometheus:
    """A Prometheus that answers every query with one fixed value per expression (none: no series)."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def query(self, expr: str) -> list[dict]:
        if expr == "job:lab_diagnosis:verdict":
            return [{"metric": {"verdict": "healthy"}, "value": [0, "1"]}]
        return [{"metric": {}, "value": [0, str(self.values[expr])]}] if expr in self.values else []

    def value(self, expr: str) -> float | None:
        return float(self.values[expr]) if expr in self.values else None

    def rule_groups(self) -> list[dict]:
        return []


@pytest.mark.parametrize(
    ("p999", "requests", "shown"),
    [("NaN", 600, "too few requests"), ("1.09", 1200, "1090 ms")],
)
def test_the_p999_is_shown_beside_its_requests_and_in_words_when_they_are_too_few(p999, requests, shown):
    text = report(
        StillPrometheus({"job:lab_p999_seconds:worse_rate30s": p999, "job:lab_http_requests:max_count30s": requests})
    )

    assert re.search(rf"^P99\.9, the worse of client and server +{shown}\b", text, re.MULTILINE), text
    assert re.search(rf"^requests behind it \(P99\.9 needs 1000\) +{requests}\b", text, re.MULTILINE), text
