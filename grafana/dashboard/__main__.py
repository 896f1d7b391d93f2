"""`python -m grafana.dashboard` (or `make dashboard`): write the dashboard's JSON for Grafana to provision."""

from __future__ import annotations

import argparse
from pathlib import Path

from grafana.dashboard import DASHBOARD_FILE, render


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m grafana.dashboard", description="Write the Model serving lab dashboard as Grafana's JSON."
    )
    parser.add_argument("--out", type=Path, default=DASHBOARD_FILE, help="where to write the JSON (%(default)s)")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
