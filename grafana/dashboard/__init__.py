"""The "Model serving lab" dashboard, written as code: `python -m grafana.dashboard` writes dashboards/lab.json.

Grafana reads the JSON; this package is where it is edited, so that every panel gets the same datasource, a
description and a unit, and the layout cannot overlap. A test checks that the committed JSON is what this
package writes, and another runs every query against a live Prometheus.

- `panels.py`: what every panel shares (datasource, queries, the frame of a panel, limit lines, overrides).
- one module a row, top to bottom: `golden_signals.py`, `diagnosis.py`, `cpu_and_memory.py`,
  `inside_the_request.py`, `load_generator.py`, `balancer.py`; each has a TITLE and its panels().
- `assembly.py`: the rows in order, the template variables, the change marks, and the JSON.

Panels are built with grafana-foundation-sdk's typed builders. They read the recording rules
(prometheus/rules/recording.yml) wherever one exists, so the dashboard and the diagnosis see the same numbers;
raw series with `$__rate_interval` only where no rule fits (heatmap, stages).
"""

from grafana.dashboard.assembly import DASHBOARD_FILE, build, render

__all__ = ["DASHBOARD_FILE", "build", "render"]
