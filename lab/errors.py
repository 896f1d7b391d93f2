"""The one error the harness raises, and its kinds."""

from __future__ import annotations


class LabError(RuntimeError):
    """The lab could not be started or driven; the message says why and what to do."""


class WaitTimeout(LabError, TimeoutError):
    """A condition did not hold by its deadline."""


class ProcessExited(LabError):
    """A process the lab started exited while it was needed."""


class MissingTool(LabError):
    """A program the lab needs is not installed."""

    def __init__(self, tool: str, package: str, why: str = "") -> None:
        self.tool, self.package = tool, package
        super().__init__(f"{tool} is not installed (Debian package: {package}){why}")


class MissingVirtualenv(LabError):
    """An optional part of the lab whose own virtualenv has not been created; the message names the make target."""
