"""Time to verdict: how long the diagnosis took to name the bottleneck once the load crossed the API's capacity.

Read from the run's series (one sample per STEP_SECONDS, as experiments.collect reads them back), so every moment
below is a sample's time and the figure is a multiple of STEP_SECONDS:

- **The crossing**: the first sample at which all the users of the run's heaviest step were running (Locust's
  user count reached the step's, so its ramp is over). When the SLO broke, the heaviest step is the one that broke
  it (the run stops there), and the load crossed the API's capacity when it began. When the SLO held (a plan of
  one long step, like memory-bound's or cold-start's, or a run that reached its maximum users), the load never
  crossed the capacity the SLO measures: the figure counts from the start of that step instead, and so includes
  the time the problem took to build up (a leak filling memory).
- **The verdict**: the first sample from the crossing on that names the verdict under load (the report's
  `verdict_under_load`, read from the same samples: the heaviest step and the rule window after it). Named
  already at the crossing counts 0 s: the learner who looks at that moment reads the answer, even if the
  diagnosis named it during the step before (whose load was already near capacity). Named before and gone by
  the crossing does not count: that was about a load the API served.
- **None** when the verdict under load is healthy (no bottleneck to name), when there is none, or when the run
  recorded no users; `reason` says which.

Why the verdict under load, not each scenario's expected verdict: the lab keeps no single list of those (each
proof asserts its own, and several scenarios expect no particular bottleneck), and the figure measures how fast
the diagnosis gives its answer, which the proofs check for correctness apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from experiments.collect import RunSeries
from model_api.vocabulary import HEALTHY, RULE_WINDOW_SECONDS, STEP_SECONDS


def heaviest_step(series: RunSeries) -> list[int]:
    """The samples that describe the run's heaviest step (the most users it ran), in order: those taken while it
    ran, then those of the rule window after the load stopped, which still describe it (the verdict lags the
    load by up to a window, and a short step may have no verdict of its own). Empty when it ran no users."""
    users, times = series.values["users"], series.timestamps
    top = max((u for u in users if u), default=None)
    if top is None:
        return []
    at_top = [i for i, u in enumerate(users) if u == top]
    last = at_top[-1]
    after = [i for i in range(last + 1, len(users)) if not users[i] and times[i] - times[last] <= RULE_WINDOW_SECONDS]
    return [*at_top, *after]


@dataclass(frozen=True)
class TimeToVerdict:
    """From the load crossing the API's capacity to the diagnosis naming the verdict under load (module doc)."""

    seconds: float | None  # named_at - crossed_at; None when there is no time to verdict (`reason` says why)
    verdict: str | None  # the verdict under load waited for
    users: int | None  # the heaviest step's users: the step that broke the SLO, or the last that held
    broke: bool  # whether that step broke the SLO (else the figure counts from its start)
    crossed_at: float | None  # Unix seconds: the first sample with all its users running
    named_at: float | None  # Unix seconds: the first sample from then on that named the verdict
    reason: str | None = None  # why there is none
    resolution_s: float = STEP_SECONDS  # the samples' spacing: both moments are known to within it

    def short(self) -> str:
        """For a table cell or a console line: "15 s", "40 s (SLO held)", "none (healthy under load)"."""
        if self.seconds is None:
            return f"none ({self.reason})"
        return f"{self.seconds:.0f} s" + ("" if self.broke else " (SLO held)")

    def sentence(self) -> str:
        """For the summary: the figure, the moments it is read between, and how precisely."""
        if self.seconds is None:
            return (
                f"**Time to verdict: none** ({self.reason}): it measures how long the diagnosis took to name a "
                "bottleneck once the load crossed the API's capacity."
            )
        precision = f"read from samples {self.resolution_s:g} s apart, so to within {self.resolution_s:g} s"
        if self.broke:
            return (
                f"**Time to verdict: {self.seconds:.0f} s**: verdict {self.verdict} named {self.seconds:.0f} s "
                f"after the load crossed capacity (at {self.users} users, the step that broke the SLO, once all "
                f"were running; {precision})."
            )
        return (
            f"**Time to verdict: {self.seconds:.0f} s (SLO held)**: verdict {self.verdict} named "
            f"{self.seconds:.0f} s after the heaviest step began (at {self.users} users, once all were running; "
            f"{precision}). The SLO held, so the load never crossed the capacity it measures: this counts from the "
            "step's start, and includes the time the problem took to build up."
        )


def time_to_verdict(series: RunSeries, verdict: str | None, broke: bool) -> TimeToVerdict:
    """The time to verdict of a run whose verdict under load is `verdict` and whose heaviest step broke the SLO
    (`broke`) or held it; see the module's doc for the definition."""
    samples = heaviest_step(series)

    def none(reason: str, users: int | None = None) -> TimeToVerdict:
        return TimeToVerdict(None, verdict, users, broke, None, None, reason)

    if not samples:
        return none("the run recorded no users")
    users = round(series.values["users"][samples[0]] or 0)
    if verdict is None:
        return none("no verdict under load", users)
    if verdict == HEALTHY:
        return none("healthy under load: no bottleneck to name", users)
    named = next((i for i in samples if series.verdicts[i] == verdict), None)
    if named is None:
        return none(f"{verdict} never named from the step's start on", users)
    crossed_at, named_at = series.timestamps[samples[0]], series.timestamps[named]
    return TimeToVerdict(named_at - crossed_at, verdict, users, broke, crossed_at, named_at)
