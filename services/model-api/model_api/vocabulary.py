"""The lab's shared words and numbers, defined once: the verdicts and their colours, the model routes, the
breaking-point defaults, Prometheus's step and how far the diagnosis trails the load.

A module without imports or side effects (like buckets.py), so that the API, the Locust plugin, the dashboard
builder, the experiment runner and the tests all import it without pulling anything else in. The rule files
cannot import: a unit test checks prometheus/rules/*.yml against these.
"""

# The diagnosis's verdicts, in the order a learner meets them, each with its colour: Grafana's named colours as
# hex, so the dashboard and the experiment charts (matplotlib) paint a verdict alike.
VERDICTS: dict[str, str] = {
    "healthy": "#73bf69",  # green
    "cpu-bound": "#f2495c",  # red
    "io-bound": "#ff9830",  # orange
    "event-loop-blocked": "#b877d9",  # purple
    "memory-bound": "#8f3bb8",  # dark purple
    "queueing": "#fade2a",  # yellow
    "slo-breached": "#c4162a",  # dark red
    "load-generator-saturated": "#5794f2",  # blue
}
HEALTHY = "healthy"
LOAD_GENERATOR_SATURATED = "load-generator-saturated"  # the one verdict about the client, not the API

# The routes that serve a model; the others (/healthz, /readyz, /metrics) are the lab's own plumbing.
MODEL_ROUTES: tuple[str, ...] = ("/classify", "/predict")
MODEL_ROUTES_REGEX = "|".join(MODEL_ROUTES)  # for a PromQL matcher: route=~"/classify|/predict"

# What runs the two forests in a worker (LAB_MODEL_RUNTIME): scikit-learn itself, or ONNX Runtime on the forests
# that training also exports to ONNX. The default first.
MODEL_RUNTIMES: tuple[str, ...] = ("sklearn", "onnx")

# The answer cache (LAB_CACHE): none, one per worker, or one Redis that every worker and replica shares. The
# default first. Each lookup ends in one of the results: the answer was there, it was not, or the cache could not
# say (Redis failed, timed out, or is paused after a failure) and the request went to the model as if uncached.
CACHES: tuple[str, ...] = ("off", "local", "redis")
CACHE_RESULTS: tuple[str, ...] = ("hit", "miss", "error")

# Prometheus scrapes every target and evaluates every rule this often (prometheus/prometheus.yml); charts and
# reports read one sample per step.
STEP_SECONDS = 5
# The recording rules' rates look back this far, so the diagnosis describes a step until that long after it.
RULE_WINDOW_SECONDS = 30
# How long an OOM kill keeps the verdict at memory-bound: long enough to read it after the load has calmed down.
OOM_MEMORY_SECONDS = 180
# How far the verdict trails the load: a scrape (5 s), a Locust worker's report (3 s), the rule evaluations from
# the raw series to the signals (5 s each), and one more for the verdict to hold at two in a row.
DIAGNOSIS_LAG_SECONDS = 25

# The course's latency objective: a response slower than this is a failure, and a breaking-point step whose
# P99 exceeds it breaks.
SLO_MS = 1000.0
# A P99.9 is the time only one request in 1,000 exceeds: from fewer requests than that, it is no more than the
# slowest one or two, interpolated, and moves with every new request. Below this many requests in its window, the
# lab shows a P99.9 as "too few requests" instead of a number (the rules, the dashboard, the report, diagnose).
P999_MIN_SAMPLES = 1000
TOO_FEW_REQUESTS = "too few requests"
# How Locust's failure message for such a response starts: the soak counts these apart from errors.
SLOWER_THAN_SLO = "slower than the SLO"
# How it starts for a request that got no answer at all (the connection failed, or the worker holding it died):
# the experiment report counts these against the requests the API says its dead workers lost.
NO_RESPONSE = "no response"

# The breaking-point load: users in steps, each held and measured, until a step breaks the SLO. The Locust
# options, the shape and the experiment runner start from these.
BREAKING_POINT: dict[str, float] = {
    "start_users": 5,
    "step_users": 5,
    "step_seconds": 20.0,
    "max_users": 100,
    "spawn_rate": 10.0,
    "max_failure_ratio": 0.01,
}
