"""What every panel of the dashboard shares: the datasource, the variables' matchers, how a query is written,
the frame of a panel (title, description, unit, size) and the few field settings several rows use.

The row modules build their panels with grafana-foundation-sdk's typed builders, starting from these helpers,
so that every panel reads the provisioned Prometheus, says what to look for and has a unit.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import TypeVar

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.models import common, dashboard
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

# provisioning/datasources/prometheus.yaml gives the lab's Prometheus this uid.
DATASOURCE = common.DataSourceRef(type_val="prometheus", uid="prometheus")

# The template variables (assembly.py defines them), as PromQL matchers: server-side panels filter by route,
# client-side (Locust) panels by endpoint.
ROUTE = 'route=~"$route"'
ENDPOINT = 'endpoint=~"$endpoint"'

# What a panel fed only by the lab's Locust shows when the load comes from elsewhere (wrk, k6, a notebook, a
# locustfile run without the lab's exporter): unavailable, said in words, never an empty graph or a zero.
NO_CLIENT = "no client-side data: the load is not coming from the lab's Locust"

PanelBuilder = TypeVar("PanelBuilder", timeseries.Panel, stat.Panel, table.Panel, heatmap.Panel, statetimeline.Panel)


def query(
    expr: str, legend: str = "", *, instant: bool = False, format: PromQueryFormat = PromQueryFormat.TIME_SERIES
) -> prometheus.Dataquery:
    """One PromQL query on the lab's Prometheus: over the dashboard's range, or one `instant` (the state now)."""
    target = prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").format(format).datasource(DATASOURCE)
    return target.instant() if instant else target.range()


def panel(
    kind: PanelBuilder,
    title: str,
    description: str,
    queries: Sequence[prometheus.Dataquery],
    unit: str,
    *,
    width: int = 8,
    height: int = 8,
) -> PanelBuilder:
    """A panel of any kind, framed: what it shows (queries, lettered A, B...), what to look for (description),
    its unit and its size. The dashboard flows panels left to right, row by row (assembly.py)."""
    targets = [target.ref_id(letter) for letter, target in zip(string.ascii_uppercase, queries, strict=False)]
    return (
        kind.title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
        .targets(targets)
    )


def timeseries_panel(
    title: str,
    description: str,
    queries: Sequence[prometheus.Dataquery],
    unit: str,
    *,
    width: int = 8,
    height: int = 8,
    line_at: float | None = None,
    line_color: str = "red",
) -> timeseries.Panel:
    """A graph, the dashboard's usual panel: thin filled lines, every series in the tooltip (largest first),
    and, with `line_at`, a dashed line at the limit the series should be read against."""
    graph = (
        panel(timeseries.Panel(), title, description, queries, unit, width=width, height=height)
        .line_width(2)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(legend_below())
        .tooltip(
            common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)
        )
    )
    if line_at is not None:
        graph = graph.thresholds(thresholds_at(line_at, line_color)).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    return graph


def legend_below() -> common_builders.VizLegendOptions:
    """A legend under the panel, one entry after another (Grafana's default, said outright: the SDK's
    default legend is hidden)."""
    return (
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def thresholds_at(value: float, color: str) -> dashboard_builders.ThresholdsConfig:
    """Green below `value`, `color` from it on."""
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(dashboard.ThresholdsMode.ABSOLUTE)
        .steps([dashboard.Threshold(value=None, color="green"), dashboard.Threshold(value=value, color=color)])
    )


def fixed_color(color: str) -> dashboard.DynamicConfigValue:
    """An override property: the series in this one colour."""
    return dashboard.DynamicConfigValue(
        id_val="color", value=dashboard.FieldColor(mode=dashboard.FieldColorModeId.FIXED, fixed_color=color)
    )


def dashed() -> dashboard.DynamicConfigValue:
    """An override property: the series as a dashed line (a limit, not a measurement)."""
    return dashboard.DynamicConfigValue(id_val="custom.lineStyle", value=common.LineStyle(fill="dash", dash=[10, 10]))


def ratio_on_the_right() -> list[dashboard.DynamicConfigValue]:
    """Override properties: a unitless ratio, on its own axis on the right of a graph of seconds."""
    return [
        dashboard.DynamicConfigValue(id_val="unit", value="none"),
        dashboard.DynamicConfigValue(id_val="custom.axisPlacement", value=common.AxisPlacement.RIGHT),
    ]


def yes_no() -> list[dashboard.ValueMapping]:
    """0/1 signals shown as words and colours on a state timeline."""
    return [
        dashboard.ValueMap(
            options={
                "0": dashboard.ValueMappingResult(text="no", color="green"),
                "1": dashboard.ValueMappingResult(text="yes", color="red"),
            }
        )
    ]
