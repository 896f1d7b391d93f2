"""The lab's plugin for any locustfile: its options, its Prometheus exporter, and workers that rejoin a master.

The compose lab passes it to Locust beside whatever LOCUST_LOCUSTFILE names, so that a learner's own locustfile
(a plain HttpUser, with no lab imports) is measured like the lab's: client P99, failures, users and workers
reach Prometheus and the dashboard.

    locust -f mine/my_locustfile.py,lab_plugin.py -H http://127.0.0.1:8000
"""

from lab_locust import exporter, options, rejoin  # noqa: F401  (register options, exporter, rejoining)
