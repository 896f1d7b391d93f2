"""Deterministic synthetic data: the training sets and the request payloads.

One source for both, so that the load generator posts applicants and houses that look like the
ones the models were trained on. Locust and the tests import from here; nothing else generates payloads.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import numpy as np

DATA_SEED = 42
# The catalog's own seed: every Locust user and worker builds the same catalog, so their draws repeat each other's.
CATALOG_SEED = DATA_SEED + 2

HOME = ("rent", "owner", "private", "ignore", "parents", "other", "unk")
MARITAL = ("single", "married", "widow", "separated", "divorced", "unk")
RECORDS = ("no", "yes", "unk")
JOB = ("freelance", "fixed", "partime", "others", "unk")
LOCATIONS = ("NY", "SF", "LA", "CHI", "SEA", "AUS", "BOS", "MIA")

# The request the course posts to its credit-risk service; it must always be accepted.
COURSE_APPLICANT: dict[str, Any] = {
    "seniority": 3,
    "home": "owner",
    "time": 36,
    "age": 26,
    "marital": "single",
    "records": "no",
    "job": "freelance",
    "expenses": 35,
    "income": 0.0,
    "assets": 60000.0,
    "debt": 3000.0,
    "amount": 800,
    "price": 1000,
}

COURSE_HOUSE: dict[str, Any] = {"sqft": 1500, "bedrooms": 3, "location": "NY"}

# Probabilities follow the shares of the classic credit-scoring data (about 4,500 applicants).
_HOME_P = (0.22, 0.47, 0.05, 0.01, 0.18, 0.07, 0.0)
_MARITAL_P = (0.22, 0.73, 0.015, 0.027, 0.008, 0.0)
_RECORDS_P = (0.83, 0.17, 0.0)
_JOB_P = (0.23, 0.63, 0.10, 0.04, 0.0)
_LOCATION_PRICE_PER_SQFT = {
    "NY": 720.0,
    "SF": 880.0,
    "LA": 560.0,
    "CHI": 260.0,
    "SEA": 520.0,
    "AUS": 330.0,
    "BOS": 610.0,
    "MIA": 450.0,
}


def _choice(rng: np.random.Generator, options: tuple[str, ...], p: tuple[float, ...], n: int) -> np.ndarray:
    weights = np.asarray(p, dtype=float)
    return rng.choice(np.asarray(options), size=n, p=weights / weights.sum())


def _credit_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    age = np.clip(rng.normal(37, 11, n), 18, 68).round()
    seniority = np.clip(rng.exponential(7, n), 0, np.minimum(48, age - 16)).round()
    income = np.clip(rng.lognormal(4.9, 0.5, n), 0, 959).round()
    income[rng.random(n) < 0.08] = 0.0  # some applicants declare no income, like the course payload
    assets = np.where(rng.random(n) < 0.35, 0.0, np.clip(rng.lognormal(8.5, 1.0, n), 0, 300000).round(-2))
    debt = np.where(rng.random(n) < 0.8, 0.0, np.clip(rng.lognormal(7.5, 0.9, n), 0, 30000).round(-1))
    price = np.clip(rng.lognormal(7.2, 0.45, n), 105, 11140).round()
    amount = np.clip(price * rng.uniform(0.3, 1.0, n), 100, 5000).round(-1)
    return {
        "seniority": seniority,
        "home": _choice(rng, HOME, _HOME_P, n),
        "time": rng.choice(np.array([12.0, 24.0, 36.0, 48.0, 60.0]), size=n, p=[0.1, 0.15, 0.2, 0.25, 0.3]),
        "age": age,
        "marital": _choice(rng, MARITAL, _MARITAL_P, n),
        "records": _choice(rng, RECORDS, _RECORDS_P, n),
        "job": _choice(rng, JOB, _JOB_P, n),
        "expenses": np.clip(rng.normal(55, 19, n), 35, 180).round(),
        "income": income,
        "assets": assets,
        "debt": debt,
        "amount": amount,
        "price": price,
    }


def _default_logit(c: dict[str, np.ndarray]) -> np.ndarray:
    """A plausible risk score: bad records, unstable jobs, thin margins and big loans raise it."""
    margin = (c["income"] - c["expenses"] - c["debt"] / 60.0) / 100.0
    return (
        -1.1
        + 1.7 * (c["records"] == "yes")
        + 1.1 * (c["job"] == "partime")
        + 0.5 * (c["job"] == "freelance")
        + 0.6 * (c["job"] == "others")
        + 0.5 * (c["home"] == "rent")
        + 0.4 * (c["home"] == "other")
        - 0.5 * (c["home"] == "owner")
        + 0.3 * (c["marital"] == "single")
        - 0.07 * c["seniority"]
        - 0.6 * np.tanh(margin)
        + 1.8 * (c["amount"] / c["price"] - 0.65)
        - 0.25 * np.log1p(c["assets"] / 10000.0)
        + 0.012 * (c["time"] - 36)
        - 0.01 * (c["age"] - 37)
    )


def _rows(columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    names = list(columns)
    return [
        {name: (value.item() if hasattr(value, "item") else value) for name, value in zip(names, values, strict=True)}
        for values in zip(*(columns[name] for name in names), strict=True)
    ]


def credit_dataset(n: int = 4500, seed: int = DATA_SEED) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Applicants and their default target (1 = defaulted), the same for the same n and seed."""
    rng = np.random.default_rng(seed)
    columns = _credit_columns(rng, n)
    probability = 1.0 / (1.0 + np.exp(-_default_logit(columns)))
    target = (rng.random(n) < probability).astype(int)
    return _rows(columns), target


def house_dataset(n: int = 2000, seed: int = DATA_SEED) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Houses and their price in dollars, the same for the same n and seed."""
    rng = np.random.default_rng(seed + 1)
    location = rng.choice(np.asarray(LOCATIONS), size=n)
    sqft = np.clip(rng.lognormal(7.5, 0.45, n), 500, 10000).round(-1)
    bedrooms = np.clip(np.round(sqft / 650 + rng.normal(0, 0.8, n)), 1, 10).astype(int)
    per_sqft = np.array([_LOCATION_PRICE_PER_SQFT[c] for c in location])
    price = sqft * per_sqft * rng.lognormal(0, 0.12, n) + 15000 * bedrooms
    columns = {"sqft": sqft, "bedrooms": bedrooms, "location": location}
    return _rows(columns), price.round(-2)


def zipf_weights(size: int, skew: float) -> np.ndarray:
    """The chance of drawing each entry of a catalog of `size`, by rank: proportional to 1 / rank^skew (Zipf's
    law, as the popularity of items, pages and customers goes). skew 0 is uniform; at 1 the top 1% of 10,000
    entries take about half the draws (H(100) / H(10000), harmonic numbers)."""
    weights = np.arange(1, size + 1, dtype=float) ** -skew
    return weights / weights.sum()


@lru_cache(maxsize=4)
def _catalog(kind: str, size: int) -> tuple[dict[str, Any], ...]:
    # Built once per process and catalog: every user of a Locust worker shares it.
    if kind == "applicants":
        return tuple(_rows(_credit_columns(np.random.default_rng(CATALOG_SEED), size)))
    return tuple(house_dataset(size, CATALOG_SEED)[0])


def catalog_draws(kind: str, size: int, skew: float, seed: int | None = None) -> Iterator[dict[str, Any]]:
    """An endless stream of entries drawn from a fixed catalog of `size` applicants or houses (`kind`), the same
    catalog in every process, each entry drawn with its `zipf_weights` chance: a load in which requests repeat,
    as real ones do, so that an answer cache has something to find."""
    entries = _catalog(kind, size)
    weights = zipf_weights(size, skew)
    rng = np.random.default_rng(seed)
    while True:
        for index in rng.choice(size, size=256, p=weights):
            yield dict(entries[index])


def applicants(seed: int | None = None, catalog_size: int = 0, catalog_skew: float = 1.0) -> Iterator[dict[str, Any]]:
    """An endless stream of varied applicants for load tests; the course applicant comes first. With a
    `catalog_size`, drawn from that many distinct applicants instead (see `catalog_draws`)."""
    if catalog_size > 0:
        yield from catalog_draws("applicants", catalog_size, catalog_skew, seed)
    yield dict(COURSE_APPLICANT)
    rng = np.random.default_rng(seed)
    while True:
        yield from _rows(_credit_columns(rng, 256))


def houses(seed: int | None = None, catalog_size: int = 0, catalog_skew: float = 1.0) -> Iterator[dict[str, Any]]:
    """An endless stream of varied houses for load tests; the course house comes first. With a `catalog_size`,
    drawn from that many distinct houses instead (see `catalog_draws`)."""
    if catalog_size > 0:
        yield from catalog_draws("houses", catalog_size, catalog_skew, seed)
    yield dict(COURSE_HOUSE)
    rng = np.random.default_rng(seed)
    while True:
        rows, _ = house_dataset(256, int(rng.integers(1 << 31)))
        yield from rows
