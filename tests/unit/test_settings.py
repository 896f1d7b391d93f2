"""Settings: every knob is read from the environment once, validated, and refused with a readable message."""

from __future__ import annotations

import pytest

from model_api.settings import Settings, SettingsError, env_name, load_settings


@pytest.fixture
def env(monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(env_name(name), raising=False)
    return monkeypatch


def test_defaults_are_the_baseline_scenario(env):
    settings = load_settings()

    assert settings.handler_style == "sync"
    assert settings.downstream_latency_ms == 0
    assert settings.batching is False
    assert settings.model_runtime == "sklearn"
    assert settings.metrics is True
    assert settings.threadpool_size == 40
    assert settings.web_concurrency == 1
    assert settings.blas_threads == 1
    assert settings.max_body_bytes == 64 * 1024
    assert settings.cache == "off"


def test_knobs_are_read_from_lab_variables(env):
    env.setenv("LAB_HANDLER_STYLE", "async-blocking")
    env.setenv("LAB_DOWNSTREAM_LATENCY_MS", "50")
    env.setenv("LAB_DOWNSTREAM_JITTER_MS", "10")
    env.setenv("LAB_BATCHING", "true")
    env.setenv("LAB_MODEL_RUNTIME", "onnx")
    env.setenv("WEB_CONCURRENCY", "3")
    env.setenv("PROMETHEUS_MULTIPROC_DIR", "/tmp/x")

    settings = load_settings()

    assert settings.handler_style == "async-blocking"
    assert (settings.downstream_latency_ms, settings.downstream_jitter_ms) == (50, 10)
    assert settings.batching is True
    assert settings.model_runtime == "onnx"
    assert settings.web_concurrency == 3
    assert settings.multiprocess


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("LAB_HANDLER_STYLE", "threads", "LAB_HANDLER_STYLE: Input should be 'sync', 'async' or 'async-blocking'"),
        ("LAB_DOWNSTREAM_LATENCY_MS", "-5", "LAB_DOWNSTREAM_LATENCY_MS: Input should be greater than or equal to 0"),
        ("LAB_THREADPOOL_SIZE", "0", "LAB_THREADPOOL_SIZE"),
        ("LAB_BATCH_MAX_SIZE", "lots", "LAB_BATCH_MAX_SIZE: Input should be a valid integer"),
        ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY"),
        ("LAB_METRICS", "perhaps", "LAB_METRICS"),
        ("LAB_MODEL_RUNTIME", "tensorflow", "LAB_MODEL_RUNTIME: Input should be 'sklearn' or 'onnx'"),
        ("LAB_CACHE", "memcached", "LAB_CACHE: Input should be 'off', 'local' or 'redis'"),
        ("LAB_CACHE_SIZE", "0", "LAB_CACHE_SIZE: Input should be greater than or equal to 1"),
        ("LAB_CACHE_TTL_S", "0", "LAB_CACHE_TTL_S: Input should be greater than 0"),
        ("LAB_REDIS_URL", "http://redis:6379", "LAB_REDIS_URL: Value error, must be a Redis URL"),
        ("LAB_REDIS_URL", "redis://", "LAB_REDIS_URL: Value error, must be a Redis URL"),
        ("LAB_REDIS_TIMEOUT_MS", "0", "LAB_REDIS_TIMEOUT_MS: Input should be greater than 0"),
    ],
)
def test_a_bad_variable_is_named_in_the_error(env, variable, value, said):
    env.setenv(variable, value)

    with pytest.raises(SettingsError) as raised:
        load_settings()

    assert said in str(raised.value)
    assert repr(value) in str(raised.value)


def test_jitter_larger_than_the_mean_is_refused(env):
    env.setenv("LAB_DOWNSTREAM_LATENCY_MS", "10")
    env.setenv("LAB_DOWNSTREAM_JITTER_MS", "20")

    with pytest.raises(SettingsError, match="LAB_DOWNSTREAM_JITTER_MS must not exceed LAB_DOWNSTREAM_LATENCY_MS"):
        load_settings()


def test_thresholds_must_be_ordered(env):
    env.setenv("LAB_APPROVE_BELOW", "0.6")
    env.setenv("LAB_DECLINE_FROM", "0.5")

    with pytest.raises(SettingsError, match="LAB_APPROVE_BELOW must be lower than LAB_DECLINE_FROM"):
        load_settings()


def test_settings_cannot_be_changed_after_loading(env):
    settings = load_settings()

    with pytest.raises(ValueError, match="frozen"):
        settings.batching = True


def test_the_cache_knobs_are_read_from_lab_variables(env):
    env.setenv("LAB_CACHE", "redis")
    env.setenv("LAB_CACHE_SIZE", "500")
    env.setenv("LAB_CACHE_TTL_S", "2.5")
    env.setenv("LAB_REDIS_URL", "redis://redis:6379/1")
    env.setenv("LAB_REDIS_TIMEOUT_MS", "20")

    settings = load_settings()

    assert (settings.cache, settings.cache_size, settings.cache_ttl_s) == ("redis", 500, 2.5)
    assert (settings.redis_url, settings.redis_timeout_ms) == ("redis://redis:6379/1", 20)
