"""The lab's load: credit-risk and house-price users against the model API.

    locust -f locustfile.py -H http://127.0.0.1:8000                       (web UI on :8089)
    locust -f locustfile.py,shapes/breaking_point.py -H ... --headless     (find the breaking point)

The lab's options (flags, LOCUST_* variables, fields of the UI's start form) are listed in
docs/load-generator.md; Locust's own `--help` is printed before the locustfile loads, so it does not show them.
"""

from lab_locust import exporter, options, rejoin  # noqa: F401  (register options, exporter, rejoining)
from lab_locust.users import CreditRiskUser, HousePriceUser  # noqa: F401
