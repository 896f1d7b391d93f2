"""The payload catalog: requests that repeat as Zipf's law says, the same catalog in every process."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import pytest

from model_api import data
from model_api.schemas import CreditApplicant, House


def harmonic(n: int, skew: float) -> float:
    return sum(k**-skew for k in range(1, n + 1))


def key(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True)


@pytest.mark.parametrize(("size", "skew", "top"), [(1000, 1.0, 10), (1000, 1.2, 50), (200, 0.0, 20)])
def test_the_top_entries_take_the_share_zipfs_law_gives_them(size, skew, top):
    draws = 100_000
    counts = Counter(key(p) for p in itertools.islice(data.applicants(7, size, skew), draws))

    share = sum(n for _, n in counts.most_common(top)) / draws
    expected = harmonic(top, skew) / harmonic(size, skew)  # P(rank <= top) under 1 / rank^skew
    assert share == pytest.approx(expected, abs=0.015)
    assert len(counts) <= size


def test_a_uniform_catalog_draws_every_entry_about_equally():
    counts = Counter(key(p) for p in itertools.islice(data.houses(3, 50, 0.0), 50_000))

    assert len(counts) == 50
    assert max(counts.values()) < 1.2 * min(counts.values())


def test_every_process_and_user_draws_from_the_same_catalog_in_its_own_order():
    one = [key(p) for p in itertools.islice(data.applicants(1, 20, 0.5), 2000)]
    other = [key(p) for p in itertools.islice(data.applicants(2, 20, 0.5), 2000)]

    assert set(one) == set(other)  # the same 20 applicants: one user's answer is a cache hit for the other
    assert one[:50] != other[:50]


def test_catalog_entries_are_valid_requests_and_each_draw_is_a_copy():
    applicants = data.applicants(5, 30, 1.0)
    first = next(applicants)
    first["age"] = -1  # a user that changes its payload must not change the catalog

    for payload in itertools.islice(applicants, 200):
        CreditApplicant.model_validate(payload)
    for payload in itertools.islice(data.houses(5, 30, 1.0), 200):
        House.model_validate(payload)


def test_without_a_catalog_the_stream_is_endless_and_varied_as_before():
    stream = list(itertools.islice(data.applicants(9), 1000))

    assert stream[0] == data.COURSE_APPLICANT
    assert len({key(p) for p in stream}) > 990
