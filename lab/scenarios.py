"""The scenarios' compose overrides, read as docker compose reads them: what the API runs with."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

from lab.errors import LabError
from lab.paths import REPO, SCENARIOS_DIR


def scenario_file(name: str) -> Path:
    path = SCENARIOS_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SCENARIOS_DIR.glob("*.yaml")))
        raise LabError(f"no scenario {name!r}: scenarios are {known}")
    return path


COMPOSE_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<colon>:?)-(?P<default>[^}]*))?\}")


def interpolate(text: str, variables: dict[str, str]) -> str:
    """`${VAR}`, `${VAR:-default}` and `${VAR-default}` substituted as docker compose does."""

    def value(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        found = variables.get(name)
        if default is None or (found is not None and (found or not match["colon"])):
            return found or ""
        return default

    if "${" in COMPOSE_VARIABLE.sub("", text):
        raise LabError(f"{text!r}: only ${{VAR}}, ${{VAR:-default}} and ${{VAR-default}} are understood here")
    return COMPOSE_VARIABLE.sub(value, text)


@dataclass(frozen=True)
class ApiService:
    """What compose would give the API: its environment (WEB_CONCURRENCY apart) and its CPU limit."""

    environment: dict[str, str]
    workers: int
    cpus: float


def api_service(scenario: str | None = None) -> ApiService:
    """compose.yaml's api service with `scenario`'s override merged in, each variable read as compose reads it:
    from the shell, else from .env, else its default. A native run starts the API with exactly this."""
    variables = {**{k: v or "" for k, v in dotenv_values(REPO / ".env").items()}, **os.environ}
    files = [REPO / "compose.yaml", *([scenario_file(scenario)] if scenario else [])]
    environment: dict[str, Any] = {}
    cpus: Any = None
    for path in files:
        api = yaml.safe_load(path.read_text())["services"]["api"]
        environment.update(api.get("environment", {}))  # compose merges environments key by key
        cpus = api.get("cpus", cpus)
    resolved = {key: interpolate(str(value).lower() if isinstance(value, bool) else str(value), variables)
                for key, value in environment.items()}  # fmt: skip
    workers = number(
        int, resolved.pop("WEB_CONCURRENCY", "1"), f"WEB_CONCURRENCY ({environment.get('WEB_CONCURRENCY')})"
    )
    return ApiService(resolved, workers, number(float, interpolate(str(cpus or 1), variables), f"cpus ({cpus})"))


def locust_environment(scenario: str | None = None) -> dict[str, str]:
    """What `scenario`'s override sets in the Locust workers' environment (the catalog a cache needs, say),
    read as compose reads it; a native run starts its Locust workers with it."""
    if not scenario:
        return {}
    variables = {**{k: v or "" for k, v in dotenv_values(REPO / ".env").items()}, **os.environ}
    services = yaml.safe_load(scenario_file(scenario).read_text())["services"]
    environment = (services.get("locust-worker") or {}).get("environment") or {}
    return {key: interpolate(str(value), variables) for key, value in environment.items()}


def api_override(environment: dict[str, str], comment: str = "") -> str:
    """A compose override that sets the API's environment (WEB_CONCURRENCY for its workers), after any
    scenario's: what `make tune` writes, and how a measurement runs one configuration in compose."""
    header = "".join(f"# {line}\n".replace("# \n", "#\n") for line in comment.splitlines())
    body = yaml.safe_dump({"services": {"api": {"environment": dict(environment)}}}, sort_keys=False)
    return header + body


def number(kind: type[int] | type[float], text: str, what: str) -> Any:
    """`text` as a number, else a LabError naming the setting and where its value comes from."""
    try:
        return kind(text)
    except ValueError:
        whole = "a whole number" if kind is int else "a number"
        raise LabError(f"the API's {what} is {text!r}, which is not {whole}") from None
