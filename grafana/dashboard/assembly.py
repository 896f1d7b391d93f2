"""The dashboard put together: its rows in order, its template variables, its change marks, and the JSON.

Each row is a module with a TITLE and its panels(); grafana-foundation-sdk's Dashboard builder lays them out,
left to right and row by row, and encodes the JSON that Grafana provisions from dashboards/lab.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from grafana.dashboard import (
    balancer,
    caching,
    cold_start,
    cpu_and_memory,
    diagnosis,
    golden_signals,
    inside_the_request,
    load_generator,
)
from grafana.dashboard.panels import DATASOURCE
from model_api.vocabulary import MODEL_ROUTES_REGEX, STEP_SECONDS

DASHBOARD_FILE = Path(__file__).parents[1] / "dashboards" / "lab.json"
GRID_WIDTH = 24

ROWS = (
    golden_signals, diagnosis, cpu_and_memory, inside_the_request, load_generator, balancer, cold_start, caching,
)  # fmt: skip


class PrometheusVariable(model.VariableModel):
    """The SDK's variable model, plus the `definition` that Grafana's Prometheus editor shows (no SDK field)."""

    def __init__(self, *, definition: str, **fields: Any) -> None:
        super().__init__(**fields)
        self.definition = definition

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "definition": self.definition}


@dataclass(frozen=True)
class LabelValues(Builder[model.VariableModel]):
    """A drop-down of every value of the label `name` on `metric`, All selected: what the panels filter by."""

    name: str
    label: str
    metric: str
    description: str

    def build(self) -> model.VariableModel:
        query = f"label_values({self.metric}, {self.name})"
        return PrometheusVariable(
            definition=query,
            type_val=model.VariableType.QUERY,
            name=self.name,
            label=self.label,
            description=self.description,
            datasource=DATASOURCE,
            query={"query": query, "refId": f"{self.name}-values", "qryType": 1},
            refresh=model.VariableRefresh.ON_TIME_RANGE_CHANGED,
            multi=True,
            include_all=True,
            current=model.VariableOption(selected=True, text=["All"], value=["$__all"]),
            sort=model.VariableSort.ALPHABETICAL_ASC,
            hide=model.VariableHide.DONT_HIDE,
        )


class PrometheusAnnotation(model.AnnotationQuery):
    """The SDK's annotation model, plus the Prometheus datasource's own fields beside `expr` (no SDK fields)."""

    def __init__(self, *, step: str, title_format: str, **fields: Any) -> None:
        super().__init__(**fields)
        self.step = step
        self.title_format = title_format

    def to_json(self) -> dict[str, object]:
        prometheus_fields = {"textFormat": "", "tagKeys": "", "useValueForTime": False}
        return {**super().to_json(), "step": self.step, "titleFormat": self.title_format, **prometheus_fields}


@dataclass(frozen=True)
class ChangeMark(Builder[model.AnnotationQuery]):
    """A mark on every graph at each sample where `expr` is above 0, evaluated at every step (Grafana's default
    step, a minute, would miss most changes)."""

    name: str
    expr: str
    color: str

    def build(self) -> model.AnnotationQuery:
        return PrometheusAnnotation(
            name=self.name,
            datasource=DATASOURCE,
            enable=True,
            icon_color=self.color,
            expr=self.expr,
            step=f"{STEP_SECONDS}s",
            title_format=self.name,
        )


VARIABLES = [
    LabelValues(
        "route",
        "API route",
        f'lab_http_requests_total{{route=~"{MODEL_ROUTES_REGEX}"}}',
        "The API routes the server-side panels show.",
    ),
    LabelValues(
        "endpoint", "Locust endpoint", "locust_requests_total", "The endpoints the client-side (Locust) panels show."
    ),
]

# Marks on every graph when the load or the API changed, so a knee lines up with its cause. Each query is 1 at
# the step where the value differs from the previous scrape's and 0 elsewhere (`!= bool`): Grafana marks only
# samples above 0, and a plain `!=` would return the new value itself, so a drop to zero users would never show.
CHANGES = [
    ChangeMark("Users changed", "max(locust_users) != bool max(locust_users offset 5s)", "#F2CC0C"),
    ChangeMark("Locust workers changed", "max(locust_workers) != bool max(locust_workers offset 5s)", "#8AB8FF"),
    ChangeMark("API workers changed", "sum(lab_workers) != bool sum(lab_workers offset 5s)", "#FF7383"),
]

# Grafana's own annotations and alerts, as every dashboard has them (hidden from the toggles).
BUILT_IN_ANNOTATIONS = (
    dashboard_builders.AnnotationQuery()
    .name("Annotations & Alerts")
    .datasource(common.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
    .enable(True)
    .hide(True)
    .icon_color("rgba(0, 211, 255, 1)")
    .type("dashboard")
    .built_in(1)
)


def build() -> model.Dashboard:
    """The dashboard as Grafana's JSON model (schema v1, which Grafana 12 and 13 provision from files)."""
    board = (
        dashboard_builders.Dashboard("Model serving lab")
        .uid("model-serving-lab")
        .description("Why is the model API slow under load? Golden signals, the diagnosis, and the evidence.")
        .tags(["model-serving-lab"])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .version(1)
        .time("now-15m", "now")
        .refresh(f"{STEP_SECONDS}s")
        .timezone("browser")
        .variables(VARIABLES)
        .annotations([BUILT_IN_ANNOTATIONS, *CHANGES])
    )
    for row in ROWS:
        board = board.with_row(dashboard_builders.Row(row.TITLE))
        for panel in row.panels():
            board = board.with_panel(panel)
    dashboard = board.build()
    for number, panel in enumerate(dashboard.panels or [], start=1):
        panel.id_val = number  # Grafana wants an id unique in the dashboard; the SDK sets none
        # The builder starts a new line only once a line is full: widths must add up to 24 on every line.
        box = panel.grid_pos
        if box is None or box.x + box.w > GRID_WIDTH:
            raise ValueError(f"{panel.title}: does not fit the line it is on; make the widths add up to {GRID_WIDTH}")
    return dashboard


def render() -> str:
    """The dashboard's JSON, as committed in dashboards/lab.json."""
    return json.dumps(build(), cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"
