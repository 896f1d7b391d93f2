"""`lab-locust`: locust, after making sure it can load its locustfiles and write the reports it was asked for.

A locustfile that is missing or fails to import (a learner's own, named by LOCUST_LOCUSTFILE) stops the start
with one message that says which file, why, and where the lab looks for it, instead of a bare traceback.

Locust opens its CSV files before it starts, and a folder it cannot write (the lab's ./reports, bind-mounted
and owned by someone other than the container's user: Docker run as root, a LAB_UID that is not yours) makes
the master exit with a PermissionError. Here, every `--csv` and `--html` path whose folder cannot be written is
moved to FALLBACK_DIR, with a warning that says where the reports are and how to fix the folder, and then
locust runs as asked. A report that cannot be written must never take the master, and the test, down.

    lab-locust -f locustfile.py --master --csv /home/locust/reports/run --html /home/locust/reports/r.html
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

FALLBACK_DIR = Path(tempfile.gettempdir()) / "lab-reports"
REPORT_OPTIONS = ("--csv", "--html")
LOCUSTFILE_OPTIONS = ("-f", "--locustfile")
MINE = "mine"  # where compose mounts the learner's own locustfiles (LOCUST_MINE), beside the lab's


def locustfile_spec(args: Sequence[str], environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """The locustfiles Locust will load: `-f`/`--locustfile` if given, else LOCUST_LOCUSTFILE, else its default."""
    for index, arg in enumerate(args):
        option, _, inline = arg.partition("=")
        if option in LOCUSTFILE_OPTIONS:
            return inline or (args[index + 1] if index + 1 < len(args) else "")
    return environ.get("LOCUST_LOCUSTFILE", "locustfile.py")


def _import(path: Path) -> None:
    """Import a locustfile as Locust does: its folder first on the path, under a name of its own."""
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(f"lab_locust_check_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"{path} is not a Python module")
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    finally:
        sys.path.remove(str(path.parent))


def locustfile_problems(spec: str, root: Path | None = None) -> list[str]:
    """What keeps each locustfile of a comma-separated `spec` (files or folders, relative to `root`) from
    loading: missing, not a .py file, or an error when imported. Empty when all load."""
    root = root or Path.cwd()
    problems = []
    for entry in [part.strip() for part in spec.split(",") if part.strip()]:
        path = root / entry
        if path.is_dir():
            continue
        if not path.is_file():
            present = sorted(p.name for p in path.parent.glob("*.py")) if path.parent.is_dir() else []
            listing = f" (in {path.parent}: {', '.join(present)})" if present else f" ({path.parent} has no .py file)"
            problems.append(f"{entry}: no such file{listing}")
        elif path.suffix != ".py":
            problems.append(f"{entry}: a locustfile is a .py file")
        else:
            try:
                _import(path)
            except Exception as error:  # whatever the file raises on import is what the learner must fix
                problems.append(f"{entry} fails to import: {type(error).__name__}: {error}")
    return problems


def locustfile_message(spec: str, problems: list[str]) -> str:
    return (
        f"cannot load the locustfile(s) {spec!r}:\n"
        + "".join(f"  {problem}\n" for problem in problems)
        + f"In the compose lab, put your locustfile in ./locust/{MINE} (or the folder LOCUST_MINE names in .env), "
        f"set LOCUST_LOCUSTFILE={MINE}/<your file>.py in .env, then `docker compose up -d locust-master "
        f"locust-worker`. A package your file imports must be installed in the Locust image "
        f"(its name in locust/requirements.in, then `make lock`). The rest of the lab keeps running."
    )


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
    given = sys.argv[1:] if argv is None else argv
    spec = locustfile_spec(given)
    problems = locustfile_problems(spec)
    if problems:
        print(f"lab-locust: ERROR: {locustfile_message(spec, problems)}", file=sys.stderr, flush=True)
        raise SystemExit(2)
    args, warnings = with_writable_reports(given)
    for warning in warnings:
        print(f"lab-locust: WARNING: {warning}", file=sys.stderr, flush=True)
    os.execvp("locust", ["locust", *args])


if __name__ == "__main__":
    main()
