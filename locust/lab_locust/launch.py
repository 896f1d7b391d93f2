"""`lab-locust`: locust, after making sure it can write the reports it was asked for.

Locust opens its CSV files before it starts, and a folder it cannot write (the lab's ./reports, bind-mounted
and owned by someone other than the container's user: Docker run as root, a LAB_UID that is not yours) makes
the master exit with a PermissionError. Here, every `--csv` and `--html` path whose folder cannot be written is
moved to FALLBACK_DIR, with a warning that says where the reports are and how to fix the folder, and then
locust runs as asked. A report that cannot be written must never take the master, and the test, down.

    lab-locust -f locustfile.py --master --csv /home/locust/reports/run --html /home/locust/reports/r.html
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

FALLBACK_DIR = Path(tempfile.gettempdir()) / "lab-reports"
REPORT_OPTIONS = ("--csv", "--html")


def writable(folder: Path) -> OSError | None:
    """None when files can be created in `folder` (created if missing), else the error that says why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".lab-write-check-"):
            pass
    except OSError as error:
        return error
    return None


def with_writable_reports(args: Sequence[str], fallback: Path = FALLBACK_DIR) -> tuple[list[str], list[str]]:
    """`args` with each report path moved to `fallback` where its folder cannot be written, and a warning for
    each such folder."""
    result, problems = list(args), {}
    for index, arg in enumerate(result):
        option, _, inline = arg.partition("=")
        if option not in REPORT_OPTIONS:
            continue
        at = index if inline else index + 1
        if at >= len(result):
            continue  # `--csv` with no value: locust itself says what is wrong
        path = Path(inline or result[at])
        problem = problems.get(path.parent) or writable(path.parent)
        if problem is None:
            continue
        problems[path.parent] = problem
        moved = str(fallback / path.name)
        result[at] = f"{option}={moved}" if inline else moved
    warnings = [
        f"cannot write reports to {folder} ({problem.strerror or problem}), so they go to {fallback} inside this "
        f"container: `docker compose cp locust-master:{fallback} ./reports-copy` copies them out. To have them "
        f"in the folder mounted at {folder} (./reports in the lab), make it writable for user {os.getuid()}: set "
        f"LAB_UID and LAB_GID in .env to the folder's owner (`stat -c '%u %g' reports`), or `chmod a+w reports`; "
        f"then restart the lab."
        for folder, problem in problems.items()
    ]
    return result, warnings


def main(argv: Sequence[str] | None = None) -> None:
    args, warnings = with_writable_reports(sys.argv[1:] if argv is None else argv)
    for warning in warnings:
        print(f"lab-locust: WARNING: {warning}", file=sys.stderr, flush=True)
    os.execvp("locust", ["locust", *args])


if __name__ == "__main__":
    main()
