"""The course's own locustfile (locust/examples/course_classify.py), which the tests run unmodified."""

from __future__ import annotations

from lab.paths import LOCUST_DIR

COURSE_LOCUSTFILE = LOCUST_DIR / "examples" / "course_classify.py"
COURSE_USER = "CreditRiskTestUser"  # its one user class, as Locust's class picker names it
COURSE_WAIT_SECONDS = (0.01 + 2) / 2  # its users think between(0.01, 2) seconds: about 1 s on average
