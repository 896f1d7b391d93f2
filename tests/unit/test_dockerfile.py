"""The model API's Dockerfile, read as a file: a builder stage does the installing and the training, and the final
image only receives its results. (What the image weighs is reported in docs/performance.md, never asserted.)"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.paths import API_DIR

DOCKERFILE = API_DIR / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[str]  # one per instruction, continuation lines joined, comments dropped

    def commands(self, keyword: str) -> list[str]:
        return [line.split(None, 1)[1] for line in self.instructions if line.split(None, 1)[0].upper() == keyword]


def stages() -> list[Stage]:
    """The Dockerfile's stages in order."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    found: list[Stage] = []
    for line in filter(None, (line.strip() for line in text.splitlines())):
        start = re.fullmatch(r"FROM (\S+)(?: AS (\S+))?", line, re.IGNORECASE)
        if start:
            found.append(Stage(start[1], start[2], []))
        else:
            found[-1].instructions.append(line)
    return found


def test_the_image_is_built_in_a_builder_stage_and_a_final_one_from_the_same_base():
    builder, final = stages()

    assert builder.name == "builder"
    assert final.base == builder.base


def test_the_builder_installs_the_pinned_requirements_and_trains_the_models():
    builder = stages()[0]
    run = " ".join(builder.commands("RUN"))

    assert "pip install -r requirements.txt" in run
    assert "-m model_api.train --out /app/artifacts" in run


def test_the_final_image_gets_the_virtualenv_and_the_artifacts_from_the_builder_and_installs_nothing():
    final = stages()[-1]
    copied = final.commands("COPY")
    run = " ".join(final.commands("RUN"))

    assert "--from=builder /opt/venv /opt/venv" in copied
    assert "--from=builder /app/artifacts ./artifacts" in copied
    assert not re.search(r"\b(pip|apt-get|apt|gcc|build-essential)\b", run), run
    assert not any("requirements" in line or "tests" in line for line in copied), copied


def test_the_final_image_runs_the_virtualenv_as_a_non_root_user_with_a_healthcheck():
    final = stages()[-1]

    assert any("PATH=/opt/venv/bin:$PATH" in line for line in final.commands("ENV"))
    assert final.commands("USER") == ["lab"]
    assert final.commands("HEALTHCHECK")
    assert final.commands("CMD")
