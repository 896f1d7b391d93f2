"""Prometheus text exposition read into {(name, labels): value}: what the API's and Locust's /metrics say."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, tuple[tuple[str, str], ...]]


def parse(text: str) -> dict[Sample, float]:
    samples: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: dict[Sample, float], name: str, **labels: str) -> float:
    """Sum of every sample of `name` whose labels include `labels`."""
    return sum(
        value
        for (sample_name, sample_labels), value in samples.items()
        if sample_name == name and set(labels.items()) <= set(sample_labels)
    )


def counter_types(text: str) -> set[str]:
    """Names of the samples that belong to counters (the ones that must never go down)."""
    names = set()
    for family in text_string_to_metric_families(text):
        if family.type in ("counter", "histogram"):
            names.update(sample.name for sample in family.samples if not sample.name.endswith("_created"))
    return names
