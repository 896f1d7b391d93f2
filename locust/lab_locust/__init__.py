"""The lab's Locust plugin: users that post realistic payloads, an SLO check, load shapes, a Prometheus exporter.

A locustfile imports what it wants from here; importing `lab_locust.options` and `lab_locust.exporter`
registers their command-line options and event listeners with Locust.
"""
