"""Histogram bucket boundaries, in seconds. Defined once: the API's latency histogram and the load generator's
client-side histogram use the same ones, so server and client P99 can be compared bucket for bucket.

A module without imports or side effects, so the Locust exporter can import it without pulling in the API.
"""

# Fine enough for a P99 anywhere from 1 ms to 10 s (no bucket more than 1.5x the one below it), and finer from
# 0.1 s to 2 s, where the SLOs are (1 s by default, 250 ms to 500 ms in the guides and tests): there no bucket is
# more than 1.25x the one below, so that a P99 and a P99.9 near the SLO are read from different buckets, not
# interpolated inside one wide one. 39 buckets: each costs every scrape and every observation, per route.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075,
    0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9,
    1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0,
)  # fmt: skip

# Stages of one request can take microseconds (validation), so they start lower. They are read as means and
# shares of the request (sum / count), so coarse buckets do: each bucket costs every scrape and observation.
STAGE_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

# Event-loop lag: a healthy loop answers its probe within a millisecond or two.
LAG_BUCKETS: tuple[float, ...] = (0.0005, *LATENCY_BUCKETS)

BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
