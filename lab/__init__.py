"""The lab's runtime harness: start the API, Locust, Prometheus and the compose stack, drive them and read
them back. The experiment runner, the benchmarks and the tests all use it; it depends on none of them.

Every failure here is a `LabError` whose message says what went wrong and what to do; only a `main()` turns
it into an exit code and one line.
"""

from lab.errors import LabError

__all__ = ["LabError"]
