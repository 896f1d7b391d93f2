"""How many replicas a load needs: a queueing model fitted to one replica's measurements.

    make capacity RPS=500                      # the configuration `make tune` chose (reports/tune/tune.json)
    python -m experiments.capacity --rps 500 [--tune reports/tune/tune.json]
    make capacity-check                        # the model against real runs of 1 and 2 replicas (Docker)

The model: requests arrive at random (Poisson, at the target rate) and wait in one queue (the balancer's: a
request goes to whichever replica has a free slot) for c servers per replica. The wait is M/M/c's (Erlang C: the
chance a request waits, and then an exponential wait), with the Allen-Cunneen correction for service times that
are not exponential: the mean wait scaled by (1 + cs^2) / 2, cs^2 the squared coefficient of variation of the
service times measured (0 for a constant service: half M/M/c's wait). The service that follows is drawn from
those measured times, so a fixed 250 ms downstream wait stays 250 ms. One
replica is fitted from two measurements `make tune` takes of it:
- the service time: the latency of one user alone, with nothing queued (its mean and its quantiles);
- the saturation rate X: requests per second when many users send without pause.
By Little's law a saturated replica holds X * S requests in service at once (S the mean service time): that is c
(at least 1), and mu = X / c. N replicas are N * c servers of that rate. For a target rate the model gives the
utilisation, the chance that a request waits, and the P99 of the response time (wait plus service), compared with
the SLO; the CPU is the measured CPU per request times the rate, and no replica may need more than its limit.

Its assumptions, and where the lab breaks them: arrivals are Poisson (Locust's users are a closed loop, close to
Poisson once there are many, and smoother than Poisson near saturation: the model errs on the safe side); the
wait's shape is exponential, with Allen-Cunneen's mean (an approximation, good within some 10% for moderate c);
the replicas share one queue (HAProxy's leastconn with a per-replica limit comes
close); and the replicas do not slow each other down, which holds only while the machine has cores for all of
them and for the load generator (docs/tuning.md says how far that held here).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.markdown import table
from lab.paths import REPO

DEFAULT_TUNE = REPO / "reports" / "tune" / "tune.json"
QUANTILE = 0.99


SERVICE_SAMPLES = 200  # points drawn from the measured service-time quantiles


@dataclass(frozen=True)
class Replica:
    """One replica of a configuration as it was measured: what the model is fitted to."""

    service_seconds: float  # the mean latency of one user alone: a request's service time
    service_quantiles: tuple[tuple[float, float], ...]  # (probability, seconds) of that latency, 0 and 1 included
    saturation_rps: float  # requests per second with many users sending without pause
    cpu_per_request: float  # core-seconds of CPU a request costs, at saturation
    cpus: float  # the replica's CPU limit (cores)
    slo_seconds: float

    def __post_init__(self) -> None:
        for name in ("service_seconds", "saturation_rps", "cpus", "slo_seconds"):
            if not getattr(self, name) > 0:
                raise LabError(f"a replica's {name} must be positive, not {getattr(self, name)!r}")
        levels = [level for level, _ in self.service_quantiles]
        if levels[:1] != [0] or levels[-1:] != [1] or levels != sorted(levels):
            raise LabError(f"service quantiles must run from probability 0 to 1 in order, not {levels}")

    @property
    def servers(self) -> int:
        """c: the requests a saturated replica serves at once (Little's law: rate times time in service)."""
        return max(1, round(self.saturation_rps * self.service_seconds))

    @property
    def service_rate(self) -> float:
        """mu: requests per second one of those servers completes."""
        return self.saturation_rps / self.servers

    def service_samples(self) -> list[float]:
        """Service times spread as measured: the quantile curve, linear between the measured points, read at
        SERVICE_SAMPLES evenly spaced probabilities."""
        levels, seconds = zip(*self.service_quantiles, strict=True)
        samples = []
        for i in range(SERVICE_SAMPLES):
            p = (i + 0.5) / SERVICE_SAMPLES
            k = next(k for k in range(1, len(levels)) if levels[k] >= p)
            share = (p - levels[k - 1]) / (levels[k] - levels[k - 1])
            samples.append(seconds[k - 1] + share * (seconds[k] - seconds[k - 1]))
        return samples

    def service_variation(self) -> float:
        """cs^2: the variance of the service times over their squared mean (1 for exponential, 0 for constant)."""
        samples = self.service_samples()
        mean = sum(samples) / len(samples)
        return sum((s - mean) ** 2 for s in samples) / len(samples) / mean**2

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "service_quantiles": [list(pair) for pair in self.service_quantiles]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Replica:
        quantiles = tuple((float(p), float(s)) for p, s in data["service_quantiles"])
        numbers = {name: float(data[name]) for name in cls.__dataclass_fields__ if name != "service_quantiles"}
        return cls(service_quantiles=quantiles, **numbers)


def erlang_c(servers: int, offered: float) -> float:
    """The probability that an arrival waits in an M/M/c queue with `servers` servers and `offered` = lambda/mu
    erlangs of load (below `servers`), by the Erlang B recursion, which stays exact for thousands of servers."""
    if not 0 <= offered < servers:
        raise ValueError(f"an offered load of {offered} erlangs needs more than {servers} servers")
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    utilisation = offered / servers
    return blocking / (1 - utilisation * (1 - blocking))


def response_tail(
    seconds: float, servers: int, mu: float, rate: float, service: list[float], variation: float = 1.0
) -> float:
    """P(response time > `seconds`): no wait with probability 1 - C (Erlang C), else an exponential wait of mean
    (1 + variation) / 2 / (c*mu - lambda) (Allen-Cunneen; M/M/c's for variation 1); then a service time drawn from
    `service` (samples)."""
    waits = erlang_c(servers, rate / mu)
    theta = (servers * mu - rate) * 2 / (1 + variation)
    alone = sum(s > seconds for s in service) / len(service)
    queued = sum(1.0 if s > seconds else math.exp(-theta * (seconds - s)) for s in service) / len(service)
    return (1 - waits) * alone + waits * queued


def response_quantile(
    quantile: float, servers: int, mu: float, rate: float, service: list[float], variation: float = 1.0
) -> float:
    """The response time that `quantile` of requests beat, by bisection on the tail."""
    low, high = 0.0, max(service) + 1.0 / mu
    while response_tail(high, servers, mu, rate, service, variation) > 1 - quantile:
        high *= 2
    for _ in range(60):
        middle = (low + high) / 2
        above = response_tail(middle, servers, mu, rate, service, variation) > 1 - quantile
        low, high = (middle, high) if above else (low, middle)
    return high


@dataclass(frozen=True)
class Prediction:
    """What the model says N replicas do at a rate."""

    replicas: int
    rps: float
    utilisation: float  # of the servers: above 1, the queue grows without end
    wait_probability: float | None
    p99_seconds: float | None  # None: the queue grows without end
    cpu_per_replica: float  # of each replica's CPU limit

    @property
    def holds(self) -> bool:
        return self.p99_seconds is not None

    def within(self, slo_seconds: float) -> bool:
        """The P99 within the SLO, and no replica asked for more CPU than its limit (the CPU a request costs was
        measured apart from the service rate: the two can disagree by a little, and the stricter wins)."""
        return self.p99_seconds is not None and self.p99_seconds <= slo_seconds and self.cpu_per_replica <= 1


def predict(replica: Replica, replicas: int, rps: float) -> Prediction:
    servers, mu = replicas * replica.servers, replica.service_rate
    utilisation = rps / (servers * mu)
    cpu = rps / replicas * replica.cpu_per_request / replica.cpus
    if utilisation >= 1:
        return Prediction(replicas, rps, utilisation, None, None, cpu)
    p99 = response_quantile(QUANTILE, servers, mu, rps, replica.service_samples(), replica.service_variation())
    return Prediction(replicas, rps, utilisation, erlang_c(servers, rps / mu), p99, cpu)


def held_rps(replica: Replica, replicas: int) -> float:
    """The highest rate N replicas serve with the model's P99 within the SLO (the breaking-point finder's figure)."""
    ceiling = replicas * replica.saturation_rps
    if not predict(replica, replicas, ceiling * 1e-6).within(replica.slo_seconds):
        return 0.0  # a request alone takes longer than the SLO
    low, high = 0.0, ceiling
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if predict(replica, replicas, middle).within(replica.slo_seconds) else (low, middle)
    return low


def replicas_for(replica: Replica, rps: float, most: int = 1000) -> int:
    """The fewest replicas whose P99 stays within the SLO at `rps`."""
    for replicas in range(1, most + 1):
        if predict(replica, replicas, rps).within(replica.slo_seconds):
            return replicas
    raise LabError(f"{most} replicas do not hold {rps:g} req/s within the SLO")


def plan_table(replica: Replica, rps: float, needed: int) -> list[list[str]]:
    rows = []
    for replicas in range(max(1, needed - 2), needed + 3):
        p = predict(replica, replicas, rps)
        rows.append([
            str(replicas), f"{p.utilisation:.0%}",
            "–" if p.wait_probability is None else f"{p.wait_probability:.0%}",
            "grows without end" if p.p99_seconds is None else f"{p.p99_seconds * 1000:.0f} ms",
            f"{p.cpu_per_replica:.0%}", "yes" if p.within(replica.slo_seconds) else "no",
            f"{held_rps(replica, replicas):.0f}",
        ])  # fmt: skip
    return rows


PLAN_HEADER = ["replicas", "utilisation", "requests that wait", "P99", "CPU per replica", "holds it",
               "held req/s (model)"]  # fmt: skip


def capacity_plan(replica: Replica, rps: float, name: str = "this configuration") -> str:
    """The plan as a learner reads it: one sentence, the model's fit, and the table around the answer."""
    needed = replicas_for(replica, rps)
    p = predict(replica, needed, rps)
    assert p.p99_seconds is not None
    lines = [
        f"{needed} replica{'s' if needed > 1 else ''} of {name} hold{'' if needed > 1 else 's'} {rps:g} req/s "
        "with P99 about "
        f"{p.p99_seconds * 1000:.0f} ms at {p.cpu_per_replica:.0%} CPU (of {replica.cpus:g} "
        f"core{'s' if replica.cpus != 1 else ''} each); SLO {replica.slo_seconds * 1000:.0f} ms.",
        "",
        f"The model (Erlang C's wait, Allen-Cunneen's correction, the measured service times) fitted to one replica: "
        f"mean service time "
        f"{replica.service_seconds * 1000:.1f} ms (cs^2 {replica.service_variation():.2f}), "
        f"saturation {replica.saturation_rps:.0f} req/s, so c = {replica.servers} server"
        f"{'s' if replica.servers > 1 else ''} of {replica.service_rate:.1f} req/s each; CPU "
        f"{replica.cpu_per_request * 1000:.2f} ms a request.",
        "",
        table(PLAN_HEADER, plan_table(replica, rps, needed), align="rrrrrlr"),
    ]
    return "\n".join(lines)


def load_replica(path: Path) -> tuple[Replica, str]:
    """The chosen configuration's fit from a tune report, and its name."""
    if not path.is_file():
        raise LabError(f"no tune report at {path}: run `make tune` first (or give --tune)")
    data = json.loads(path.read_text())
    chosen = data.get("chosen")
    if not chosen or not chosen.get("replica"):
        raise LabError(f"{path} has no chosen configuration with the measurements the model needs")
    return Replica.from_json(chosen["replica"]), chosen["label"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rps", type=float, required=True, help="the load to plan for, in requests per second")
    parser.add_argument("--tune", type=Path, default=DEFAULT_TUNE, help="the tune report (%(default)s)")
    args = parser.parse_args(argv)
    if not args.rps > 0:
        parser.error(f"--rps must be a positive number of requests per second, not {args.rps:g}")
    try:
        replica, name = load_replica(args.tune)
        print(capacity_plan(replica, args.rps, name))
    except LabError as error:
        print(f"capacity: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
