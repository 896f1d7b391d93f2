"""Reading the lab's dashboard as Grafana would: its panels, their queries, and Grafana's substitutions (the
live-lab and compose tiers send each query to Prometheus the way Grafana would)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from lab.paths import REPO

GRAFANA_DIR = REPO / "grafana"

# What Grafana puts in place of its built-in interval variables: with the datasource's timeInterval of 5 s,
# $__rate_interval is at least four scrapes (20 s); $__interval is the step, at most the scrape interval here.
BUILTINS = {"$__rate_interval": "20s", "$__interval": "5s"}


def panels(dashboard: dict, rows: bool = False) -> Iterator[dict]:
    """Every panel, those inside collapsed rows included; rows themselves only when asked."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            if rows:
                yield panel
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries(dashboard: dict) -> Iterator[tuple[str, str]]:
    """(a name for the query, its PromQL) for every target of every panel."""
    for panel in panels(dashboard):
        for target in panel["targets"]:
            yield f"{panel['title']} [{target['refId']}]", target["expr"]


def annotation_queries(dashboard: dict) -> Iterator[tuple[str, str]]:
    for annotation in dashboard["annotations"]["list"]:
        if annotation.get("expr"):
            yield annotation["name"], annotation["expr"]


def variables(dashboard: dict) -> list[dict]:
    return dashboard["templating"]["list"]


def label_values_query(variable: dict) -> tuple[str, str]:
    """(series selector, label) of a `label_values(selector, label)` variable."""
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
    assert match, f"variable {variable['name']}: not a label_values query"
    return match.group(1), match.group(2)


def all_value(values: list[str]) -> str:
    """What Grafana writes for a multi-value variable set to All (no custom all value): a regex alternation
    of every value, regex metacharacters escaped."""
    escaped = [re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\1", value) for value in values]
    return "(" + "|".join(escaped) + ")" if len(escaped) > 1 else escaped[0]


def template_values(dashboard: dict, offered: Callable[[str, str], list[str]]) -> dict[str, str]:
    """Each dashboard variable set to All, as Grafana substitutes it; `offered(label, selector)` gives the values
    a `label_values` variable offers (PrometheusClient.label_values)."""
    values = {}
    for variable in variables(dashboard):
        selector, label = label_values_query(variable)
        values[variable["name"]] = all_value(offered(label, selector))
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    """The query Grafana sends: template variables and built-in intervals replaced."""
    for name, value in BUILTINS.items():
        expr = expr.replace(name, value)
    for name, value in values.items():
        expr = expr.replace(f"${name}", value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr
