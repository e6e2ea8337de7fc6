"""The daemon's image installs from requirements/server.txt: it must pin everything the server needs."""

from __future__ import annotations

import re
import tomllib

from tests.conftest import ROOT


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_every_requirement_of_the_server_is_pinned_for_the_image() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in [*project["dependencies"], *project["optional-dependencies"]["server"]]}
    lines = (ROOT / "requirements" / "server.txt").read_text().splitlines()
    pinned = {_name(line): line for line in lines if line and not line.startswith("#")}
    assert all("==" in line for line in pinned.values()), "every line pins one version"
    assert wanted - set(pinned) == set(), "remake requirements/server.txt (its header says how)"
    assert {"dumb-init", "nvidia-ml-py"} <= set(pinned)  # the image's init, and NVML for the GPU inventory
