"""A soak: the API held at a share of its breaking point for a long time, to see what only time shows.

    make soak                                          # baseline, 30 min at 70% of its breaking point
    python -m experiments.soak --native --minutes 30 --share 0.7 [--rps 60]

Finds the breaking point first (the experiment runner's breaking-point load, on the same lab), unless --rps
gives the held rate. Then an open workload sends `share` of that rate, on schedule, for `minutes`, and every
30 s reads from Prometheus each worker's resident memory, the client's P99, the rate and the failures. Writes
reports/soak/<scenario>/: soak.md (the verdicts: memory flat within 10%, no errors, the P99 drift), soak.json
and soak.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx2

from experiments.collect import SERIES
from experiments.run import Plan, breaking_point_summary, lab_for, run_load, say, scenarios, wait_for_lab
from lab.errors import LabError
from lab.markdown import table
from lab.paths import MODEL_DIR, REPO
from lab.stack import Lab
from model_api.vocabulary import SLOWER_THAN_SLO

DEFAULT_OUT = REPO / "reports" / "soak"
SAMPLE_SECONDS = 30
USERS = 20  # open-workload users that share the rate: enough that one slow answer never holds the schedule back
FLAT = 0.10  # memory is flat when no worker's RSS grew more than this between the first and the last samples


@dataclass
class Sample:
    at: float  # seconds since the soak started
    rss_bytes: dict[str, float]  # per worker pid
    p99_seconds: float | None
    rps: float | None
    errors: float  # failed requests so far in the soak: an error answer, a reset or refused connection
    slow: float  # answers so far slower than the SLO (Locust counts them as failures too)


@dataclass
class Soak:
    scenario: str
    target_rps: float
    minutes: float
    samples: list[Sample] = field(default_factory=list)

    def rss_growth(self) -> dict[str, float]:
        """Per worker present from the first sample to the last, its RSS growth as a share of the first."""
        first, last = self.samples[0].rss_bytes, self.samples[-1].rss_bytes
        return {pid: last[pid] / first[pid] - 1 for pid in first if pid in last and first[pid]}

    def p99_drift(self) -> float | None:
        """Median P99 of the last fifth of the soak against the first fifth (1.0: no drift)."""
        fifth = max(1, len(self.samples) // 5)

        def median(samples: list[Sample]) -> float | None:
            values = [s.p99_seconds for s in samples if s.p99_seconds]
            return statistics.median(values) if values else None

        first, last = median(self.samples[:fifth]), median(self.samples[-fifth:])
        return last / first if first and last else None

    def verdicts(self) -> dict[str, bool]:
        growth = self.rss_growth()
        return {
            "memory flat": bool(growth) and max(growth.values()) <= FLAT,
            "no errors": self.samples[-1].errors == 0,
        }


def locust_failures(lab: Lab) -> tuple[float, float]:
    """(errors, answers slower than the SLO) that Locust counted in this swarm (its statistics start anew with
    each swarm), from its failures by message."""
    errors = slow = 0.0
    for failure in lab.locust_stats()["errors"]:
        if SLOWER_THAN_SLO in failure["error"]:
            slow += failure["occurrences"]
        else:
            errors += failure["occurrences"]
    return errors, slow


def sample(lab: Lab, started: float, before: tuple[float, float]) -> Sample:
    errors, slow = locust_failures(lab)
    rss = {r["metric"]["pid"]: float(r["value"][1]) for r in lab.query("lab_worker_resident_memory_bytes")}
    return Sample(
        at=round(time.time() - started, 1),
        rss_bytes=rss,
        p99_seconds=lab.value(SERIES["p99_client"][0]),
        rps=lab.value(SERIES["rps_client"][0]),
        errors=errors - before[0],
        slow=slow - before[1],
    )


def held_rate(lab: Lab, scenario: str, plan: Plan) -> float:
    """The breaking-point run's last held rate, on this lab."""
    say(scenario, "finding the breaking point first")
    run_load(lab, scenario, plan, progress_every=10)
    summary = breaking_point_summary(lab)
    held = (summary or {}).get("last_held")
    if not held:
        raise LabError("the breaking-point run held no step: give the rate with --rps")
    if not summary.get("breaking_step"):
        say(scenario, f"it held the SLO up to {plan.max_users} users: the soak's 'breaking point' is a floor")
    return float(held["rps"])


def soak(lab: Lab, scenario: str, target_rps: float, minutes: float) -> Soak:
    result = Soak(scenario, round(target_rps, 2), minutes)
    lab.start_swarm(user_count=USERS, spawn_rate=USERS, workload="open", open_rate=target_rps / USERS)
    before = locust_failures(lab)
    started = time.time()
    try:
        while time.time() - started < minutes * 60:
            time.sleep(min(SAMPLE_SECONDS, max(0.0, started + minutes * 60 - time.time())))
            result.samples.append(sample(lab, started, before))
            last = result.samples[-1]
            rss = ", ".join(f"{v / 2**20:.0f}" for v in last.rss_bytes.values())
            p99_ms = (last.p99_seconds or 0) * 1000
            say(scenario, f"{last.at / 60:5.1f} min  RPS {last.rps or 0:6.1f}  P99 {p99_ms:5.0f} ms  RSS {rss} MiB"
                f"  errors {last.errors:.0f}  slower than the SLO {last.slow:.0f}")  # fmt: skip
    finally:
        lab.stop_swarm()
    if len(result.samples) < 2:
        raise LabError("the soak ended before two samples: give it at least a minute")
    return result


def markdown(result: Soak) -> str:
    growth, drift = result.rss_growth(), result.p99_drift()
    first, last = result.samples[0], result.samples[-1]
    rows = [
        [pid, f"{first.rss_bytes[pid] / 2**20:.0f}", f"{last.rss_bytes[pid] / 2**20:.0f}", f"{growth[pid]:+.1%}"]
        for pid in growth
    ]
    verdicts = "; ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in result.verdicts().items())
    return "\n".join([
        f"# Soak: {result.scenario}",
        "",
        f"{result.minutes:g} minutes at {result.target_rps:.1f} req/s (open workload), sampled every "
        f"{SAMPLE_SECONDS} s. "
        f"{verdicts}; P99 drift (last fifth / first fifth): {'–' if drift is None else f'{drift:.2f}x'}.",
        "",
        "## Resident memory per worker",
        "",
        table(["worker pid", "first (MiB)", "last (MiB)", "growth"], rows),
        "",
        f"Errors: {last.errors:.0f}. Answers slower than the SLO: {last.slow:.0f}. Client P99: "
        f"{(first.p99_seconds or 0) * 1000:.0f} ms at the first sample, {(last.p99_seconds or 0) * 1000:.0f} ms at "
        "the last.",
        "",
        "![RSS per worker and P99 over the soak](soak.png)",
        "",
    ])  # fmt: skip


def chart(result: Soak, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.at / 60 for s in result.samples]
    figure, (memory, latency) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for pid in result.samples[0].rss_bytes:
        memory.plot(minutes, [s.rss_bytes.get(pid, float("nan")) / 2**20 for s in result.samples], label=f"pid {pid}")
    memory.set_ylabel("RSS (MiB)")
    highest = max(v for s in result.samples for v in s.rss_bytes.values()) / 2**20
    memory.set_ylim(0, highest * 1.25)  # flat reads flat: the whole range from zero, with room above
    memory.legend(loc="lower right")
    memory.set_title(f"Soak: {result.scenario}, {result.target_rps:.0f} req/s for {result.minutes:g} min")
    latency.plot(minutes, [(s.p99_seconds or float("nan")) * 1000 for s in result.samples], color="tab:red")
    latency.set_ylabel("client P99 (ms)")
    latency.set_ylim(bottom=0)
    latency.set_xlabel("minutes")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write(result: Soak, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(asdict(result), indent=2))
    chart(result, out / "soak.png")
    (out / "soak.md").write_text(markdown(result))
    return out / "soak.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=scenarios(), default="baseline")
    parser.add_argument("--native", action="store_true", help="run the components as processes, without Docker")
    parser.add_argument("--minutes", type=float, default=30, help="how long to hold the load (%(default)s)")
    parser.add_argument("--share", type=float, default=0.7, help="share of the breaking point to send (%(default)s)")
    parser.add_argument("--rps", type=float, help="the breaking point's held rate, to skip finding it")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the report folder goes (%(default)s)")
    args = parser.parse_args(argv)
    if args.minutes < 1 or not 0 < args.share <= 1 or (args.rps is not None and args.rps <= 0):
        parser.error("--minutes must be at least 1, --share in (0, 1], --rps positive")
    try:
        with (
            tempfile.TemporaryDirectory(prefix="soak-") as tmp,
            lab_for(args.scenario, args.native, Path(tmp), MODEL_DIR) as lab,
        ):
            wait_for_lab(lab, args.scenario)
            held = args.rps or held_rate(lab, args.scenario, Plan())
            say(args.scenario, f"soaking at {args.share:.0%} of {held:.1f} req/s for {args.minutes:g} min")
            result = soak(lab, args.scenario, args.share * held, args.minutes)
        path = write(result, args.out / args.scenario)
    except (LabError, httpx2.HTTPError) as error:  # a lab that could not start, or stopped answering
        print(f"soak failed: {error}", file=sys.stderr)
        return 1
    say(args.scenario, f"{'; '.join(f'{k}: {v}' for k, v in result.verdicts().items())}; report: {path}")
    return 0 if all(result.verdicts().values()) else 1


if __name__ == "__main__":
    sys.exit(main())
