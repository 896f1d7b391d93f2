"""One lock pins every package: requirements.lock, which `make lock` (uv) resolves from the direct dependencies.

What `make lock` would change is checked here without the network: every pin in the repository is the lock's,
the inputs pin nothing, and each generated file holds exactly what its inputs need under the lock, read from the
installed packages' metadata (`make install` installs the lock).
"""

from __future__ import annotations

import os
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lab.paths import API_DIR, BENTOML_DIR, LOCUST_DIR, REPO

LOCK = REPO / "requirements.lock"
# Each generated file and the inputs it is resolved from (the Makefile's `lock` target).
GENERATED = {
    LOCK: REPO / "requirements.in",
    API_DIR / "requirements.txt": API_DIR / "pyproject.toml",
    LOCUST_DIR / "requirements.txt": LOCUST_DIR / "requirements.in",
}
# The platform `make lock` resolves for (--python-version 3.11 --python-platform linux), whatever runs the tests.
LOCKED_PLATFORM = {
    "python_version": "3.11",
    # uv reads --python-version 3.11 as 3.11.0: a package only older 3.11s need (redis's async-timeout, below
    # 3.11.3) is locked, and the images' Python (Debian's 3.11.2) does need it.
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
# The BentoML service's virtualenv is resolved on its own (the Makefile's `lock`): BentoML needs these at other
# versions than the lock's, so they are the only pins it may hold that differ from the lock's.
BENTOML_PINS = BENTOML_DIR / "requirements.txt"
BENTOML_OWN = {"certifi", "opentelemetry-api"}
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*([^\s;#,]+)")


def pins(path: Path) -> dict[str, str]:
    """Name -> version for every `name==version` in a file, comments aside."""
    found = (PIN.search(line.split("#", 1)[0]) for line in path.read_text().splitlines())
    return {canonicalize_name(match[1]): match[2] for match in found if match}


def pinning_files() -> list[Path]:
    """Every requirements file and Dockerfile in the repository, outside hidden folders (.venv, .git)."""
    found = []
    for folder, subfolders, files in os.walk(REPO):
        subfolders[:] = [name for name in subfolders if not name.startswith(".") and name != "node_modules"]
        found += [
            Path(folder) / name
            for name in files
            if name.startswith("requirements") or name.endswith(".in") or name == "Dockerfile"
        ]
    return sorted(found)


def project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]


def inputs(path: Path) -> tuple[list[Requirement], dict[str, Path]]:
    """The direct dependencies a `.in` file or a pyproject.toml names, and the local packages (`-e`) among them."""
    if path.name == "pyproject.toml":
        return [Requirement(line) for line in project(path.parent)["dependencies"]], {}
    requirements, local = [], {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            more, more_local = inputs(path.parent / line.removeprefix("-r ").strip())
            requirements += more
            local |= more_local
        elif line.startswith("-e "):
            folder = (path.parent / line.removeprefix("-e ").strip()).resolve()
            local[canonicalize_name(project(folder)["name"])] = folder
        elif line:
            requirements.append(Requirement(line))
    return requirements, local


def needed(path: Path) -> set[str]:
    """Every package that the inputs of a generated file pull in, local packages (never pinned) aside."""
    direct, local = inputs(path)
    todo = [(requirement, {""}) for requirement in direct]
    todo += [(Requirement(line), {""}) for folder in local.values() for line in project(folder)["dependencies"]]
    seen: set[tuple[str, frozenset[str]]] = set()
    packages = set()
    while todo:
        requirement, extras = todo.pop()
        if requirement.marker and not any(
            requirement.marker.evaluate(LOCKED_PLATFORM | {"extra": extra}) for extra in extras
        ):
            continue
        name = canonicalize_name(requirement.name)
        if name in local or (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        packages.add(name)
        own_extras = set(requirement.extras) | {""}
        todo += [(Requirement(line), own_extras) for line in metadata.requires(name) or []]
    return packages


def relative(path: Path) -> str:
    return str(path.relative_to(REPO))


PINNING_FILES = pinning_files()
# What a person writes: the packages' own dependencies and the small .in files; `make lock` writes the rest.
INPUTS = [path for path in PINNING_FILES if path.suffix == ".in"] + [
    API_DIR / "pyproject.toml",
    LOCUST_DIR / "pyproject.toml",
]


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def test_the_environment_is_the_lock():
    locked = pins(LOCK)

    differ = {name: found for name, version in locked.items() if (found := installed(name)) != version}

    assert not differ, f"installed here, not as requirements.lock pins them (run `make install`): {differ}"


@pytest.mark.parametrize("path", [path for path in PINNING_FILES if path != BENTOML_PINS], ids=relative)
def test_every_pin_in_the_repository_is_the_locks(path: Path):
    locked = pins(LOCK)

    differ = {name: version for name, version in pins(path).items() if locked.get(name) != version}

    assert not differ, f"pinned here, not as requirements.lock pins them (run `make lock`): {differ}"


def test_the_bentoml_service_pins_what_it_shares_with_the_lab_as_the_lock_does_but_what_bentoml_needs_otherwise():
    locked = pins(LOCK)

    differ = {name: version for name, version in pins(BENTOML_PINS).items() if locked.get(name, version) != version}

    assert "#    make lock" in BENTOML_PINS.read_text(), "services/bentoml/requirements.txt is written by `make lock`"
    assert set(differ) == BENTOML_OWN, f"pinned otherwise than requirements.lock does (run `make lock`): {differ}"


@pytest.mark.parametrize("path", INPUTS, ids=relative)
def test_the_inputs_name_direct_dependencies_and_pin_nothing(path: Path):
    requirements, _ = inputs(path)

    pinned = [str(requirement) for requirement in requirements if "==" in str(requirement.specifier)]

    assert requirements
    assert not pinned, "pins live in requirements.lock only: name the package, `make lock` pins it"


@pytest.mark.parametrize("path", GENERATED, ids=relative)
def test_each_generated_file_holds_exactly_what_its_inputs_need(path: Path):
    source = GENERATED[path]
    made, made_from = relative(path), relative(source)

    missing, unneeded = needed(source) - set(pins(path)), set(pins(path)) - needed(source)

    assert "#    make lock" in path.read_text(), f"{made} is written by `make lock`, never by hand"
    assert not missing, f"{made_from} needs these, {made} lacks them (run `make lock`): {sorted(missing)}"
    assert not unneeded, f"{made} pins what {made_from} no longer needs (run `make lock`): {sorted(unneeded)}"


def test_the_locust_image_starts_from_the_locked_locust():
    base = re.search(r"^FROM locustio/locust:(\S+)", (LOCUST_DIR / "Dockerfile").read_text(), re.MULTILINE)

    assert base, "locust/Dockerfile starts from locustio/locust:<version>"
    assert base[1] == pins(LOCK)["locust"], "a new locust in the lock needs the same tag in locust/Dockerfile"
