"""Row 8, the answer cache (LAB_CACHE): how often it answers, what a lookup costs, and a Redis that fails.

Every query is by cache kind (local, redis); the series exist only while a cache is on (docs/metrics.md).
"""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as model

from grafana.dashboard.panels import query, timeseries_panel

TITLE = "Answer cache"
CACHE_OFF = "no cache: LAB_CACHE is off (the caching scenario turns it on)"


def panels() -> list[Builder[model.Panel]]:
    return [
        timeseries_panel(
            "Cache hit ratio",
            "The share of lookups the cache answered, with no downstream wait and no model (errors count as not "
            "answered). On a skewed catalog (Locust's --catalog-size, --catalog-skew) it climbs as the cache fills. "
            "local: each worker fills its own, so it falls as workers grow; redis: one for all, it holds.",
            [query("cache:lab_cache_hits:ratio_rate30s", "{{cache}}")],
            "percentunit",
            width=6,
        ).no_value(CACHE_OFF),
        timeseries_panel(
            "Cache lookups, by result",
            "Lookups per second: hit, miss (the model answered, then the answer was stored), error (the cache "
            "could not say, and the model answered as if uncached). Together they are the model routes' RPS.",
            [
                query(
                    "sum by (cache, result) (rate(lab_cache_lookups_total[$__rate_interval]))",
                    "{{result}} ({{cache}})",
                )
            ],
            "reqps",
            width=6,
        ).no_value(CACHE_OFF),
        timeseries_panel(
            "Cache call P99",
            "How long one call to the cache takes, get and set, failed calls included: the price of the network hop "
            "to a shared Redis (a local cache takes microseconds). A hung Redis shows at LAB_REDIS_TIMEOUT_MS.",
            [
                query(
                    "histogram_quantile(0.99, sum by (le, cache, operation) "
                    "(rate(lab_cache_duration_seconds_bucket[$__rate_interval])))",
                    "{{operation}} ({{cache}})",
                )
            ],
            "s",
            width=6,
        ).no_value(CACHE_OFF),
        timeseries_panel(
            "Cache errors, by reason",
            "Calls to the cache that failed, per second: timeout (slower than LAB_REDIS_TIMEOUT_MS), failure "
            "(refused, reset: Redis is down), paused (not tried, for a second after a failure). The requests still "
            "succeed, at the uncached speed. Zero while Redis answers.",
            [
                query(
                    "sum by (cache, reason) (rate(lab_cache_errors_total[$__rate_interval]))",
                    "{{reason}} ({{cache}})",
                )
            ],
            "reqps",  # calls per second, each made for one request
            width=6,
        ).no_value(CACHE_OFF),
    ]
