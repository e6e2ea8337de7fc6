"""deploy/systemd: the service unit and the sysusers snippet, checked by systemd's own tools.

`systemd-analyze verify` loads the unit as systemd would, and also checks that ExecStart's program
exists. The unit names where an admin installs the daemon (/opt/tao-server), not this checkout's
venv, so it is verified in a temp root (--root) that holds the unit in /etc/systemd/system and a
stand-in program at that path. The temp root has no other units (sysinit.target, docker.service):
--recursive-errors=no counts the unit's own errors only.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy" / "systemd"
UNIT = DEPLOY / "tao-server.service"
SYSUSERS = DEPLOY / "tao-server.sysusers"
EXEC_START = "/opt/tao-server/bin/tao-server"


def systemd_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; scripts/prepare installs Debian's systemd package")
    return found


def verify(unit_text: str, root: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` of `unit_text` installed as tao-server.service in the temp root `root`."""
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    (units / "tao-server.service").write_text(unit_text)
    program = root / EXEC_START.lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    return subprocess.run(
        [systemd_tool("systemd-analyze"), "verify", "--recursive-errors=no", f"--root={root}", "tao-server.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = verify(UNIT.read_text(), tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("line", "broken", "named"),
    [
        ("Type=notify", "Type=notfy", "notfy"),
        ("KillMode=mixed", "KillMode=mixd", "mixd"),
        ("StateDirectory=tao-server", "StateDirectry=tao-server", "StateDirectry"),
        (f"ExecStart={EXEC_START}", f"ExecStart={EXEC_START}-missing", f"{EXEC_START}-missing"),
    ],
)
def test_verify_fails_on_a_broken_copy_of_the_unit(tmp_path: Path, line: str, broken: str, named: str) -> None:
    text = UNIT.read_text()
    assert f"\n{line}\n" in text
    result = verify(text.replace(f"\n{line}\n", f"\n{broken}\n"), tmp_path)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr


def test_sysusers_makes_the_group_the_socket_belongs_to(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    made = subprocess.run(
        [systemd_tool("systemd-sysusers"), f"--root={tmp_path}", str(SYSUSERS)], capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    groups = [line.split(":")[0] for line in (tmp_path / "etc" / "group").read_text().splitlines()]
    assert groups == ["tao"]
    assert "TAO_SOCKET_GROUP=tao\n" in UNIT.read_text()
