"""The capacity model: Erlang C against the textbook, the response-time tail against M/M/1's closed form, the
fit by Little's law, and the plan a learner reads."""

from __future__ import annotations

import json
import math

import pytest

from experiments.capacity import (
    Replica,
    capacity_plan,
    erlang_c,
    held_rps,
    load_replica,
    main,
    predict,
    replicas_for,
    response_quantile,
)
from lab.errors import LabError

EXPONENTIAL = (*tuple((p, -math.log(1 - p) * 0.02) for p in (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999)), (1.0, 0.2))
CONSTANT_20MS = ((0.0, 0.02), (0.5, 0.02), (1.0, 0.02))


def replica(service: float = 0.02, quantiles=CONSTANT_20MS, saturation: float = 50, cpus: float = 1) -> Replica:
    return Replica(service, quantiles, saturation, cpu_per_request=0.018, cpus=cpus, slo_seconds=1.0)


@pytest.mark.parametrize(
    ("servers", "offered", "expected"),
    [(1, 0.5, 0.5), (2, 1.0, 1 / 3), (10, 8.0, 0.409)],  # M/M/1's C is rho; c=2, a=1 gives 1/3; a table's 0.409
)
def test_erlang_c_matches_the_textbook_values(servers, offered, expected):
    assert erlang_c(servers, offered) == pytest.approx(expected, abs=1e-3)


def test_erlang_c_refuses_a_load_its_servers_cannot_carry():
    with pytest.raises(ValueError, match="more than 2 servers"):
        erlang_c(2, 2.0)


def test_with_exponential_service_the_p99_of_one_server_is_m_m_1s_closed_form():
    """M/M/1: the response time is exponential at mu - lambda, so its P99 is ln(100) / (mu - lambda). With
    exponential service times cs^2 is 1 and the Allen-Cunneen correction changes nothing."""
    mu, rate = 50.0, 40.0
    service = [-math.log(1 - (i + 0.5) / 20000) / mu for i in range(20000)]
    assert response_quantile(0.99, 1, mu, rate, service, 1.0) == pytest.approx(math.log(100) / (mu - rate), rel=0.02)


def test_a_constant_service_time_waits_less_than_an_exponential_one_and_is_never_faster_than_itself():
    constant, exponential = replica(), replica(quantiles=EXPONENTIAL)
    assert constant.service_variation() == pytest.approx(0, abs=1e-9)
    assert exponential.service_variation() > 0.5
    p_constant, p_exponential = predict(constant, 1, 40), predict(exponential, 1, 40)
    assert p_constant.p99_seconds is not None
    assert p_exponential.p99_seconds is not None
    assert 0.02 < p_constant.p99_seconds < p_exponential.p99_seconds


def test_littles_law_gives_the_servers_a_saturated_replica_holds_at_once():
    assert replica(service=0.02, saturation=50).servers == 1
    io_bound = replica(service=0.25, quantiles=((0.0, 0.25), (1.0, 0.26)), saturation=16)
    assert (io_bound.servers, io_bound.service_rate) == (4, 4.0)


def test_more_replicas_hold_more_and_the_queue_grows_without_end_past_saturation():
    one = replica()
    assert held_rps(one, 2) > held_rps(one, 1) > 0
    assert held_rps(one, 1) < one.saturation_rps
    overloaded = predict(one, 1, 60)
    assert overloaded.utilisation > 1
    assert overloaded.p99_seconds is None
    assert not overloaded.within(1.0)


def test_the_plan_names_the_fewest_replicas_within_the_slo_and_the_table_around_them():
    one = replica()
    needed = replicas_for(one, 150)
    assert predict(one, needed, 150).within(1.0)
    assert not predict(one, needed - 1, 150).within(1.0)
    text = capacity_plan(one, 150, "baseline")
    assert text.startswith(f"{needed} replicas of baseline hold 150 req/s with P99 about ")
    assert "| replicas | utilisation |" in text
    assert f"| {needed + 2} |" in text


def test_a_replica_round_trips_through_json_and_bad_figures_are_named():
    one = replica(quantiles=EXPONENTIAL)
    assert Replica.from_json(json.loads(json.dumps(one.to_json()))) == one
    with pytest.raises(LabError, match="saturation_rps must be positive"):
        replica(saturation=0)
    with pytest.raises(LabError, match="from probability 0 to 1"):
        replica(quantiles=((0.5, 0.02), (1.0, 0.03)))


def test_make_capacity_without_a_tune_report_says_to_run_make_tune(tmp_path, capsys):
    assert main(["--rps", "100", "--tune", str(tmp_path / "missing.json")]) == 1
    assert "run `make tune` first" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--rps", "-5", "--tune", str(tmp_path / "missing.json")])
    assert "--rps must be a positive number" in capsys.readouterr().err


def test_make_capacity_reads_the_chosen_configuration_of_a_tune_report(tmp_path, capsys):
    path = tmp_path / "tune.json"
    path.write_text(json.dumps({"chosen": {"label": "2 workers", "replica": replica().to_json()}}))
    assert load_replica(path) == (replica(), "2 workers")
    assert main(["--rps", "100", "--tune", str(path)]) == 0
    assert "of 2 workers hold 100 req/s" in capsys.readouterr().out


def test_a_replica_that_would_need_more_cpu_than_its_limit_does_not_hold_the_load_however_short_its_queue():
    """The CPU a request costs is measured apart from the service rate: where they disagree, the stricter wins."""
    hungry = Replica(0.01, CONSTANT_20MS, 100, cpu_per_request=0.02, cpus=1, slo_seconds=1.0)
    at_60 = predict(hungry, 1, 60)
    assert at_60.p99_seconds is not None
    assert at_60.p99_seconds < 1.0
    assert at_60.cpu_per_replica == pytest.approx(1.2)
    assert not at_60.within(1.0)
    assert replicas_for(hungry, 60) == 2


def test_make_capacity_check_refuses_a_slo_that_is_not_positive_and_an_unknown_scenario(capsys):
    from experiments import capacity_check

    assert capacity_check.main(["--slo-ms", "-1"]) == 1
    assert "--slo-ms and --step-seconds must be positive" in capsys.readouterr().err
    assert capacity_check.main(["--scenario", "nope"]) == 1
    assert "no scenario 'nope'" in capsys.readouterr().err
