"""Users on the Unix socket see, follow and stop only their own jobs; the daemon's user sees all."""

from __future__ import annotations

import json

import pytest

from tao_server.testing.daemon import Daemon
from tests.integration.conftest import job_id_of, tao_as

pytestmark = pytest.mark.integration


def test_each_user_sees_and_stops_only_their_own_jobs(shared_daemon: Daemon, unprivileged_user) -> None:  # type: ignore[no-untyped-def]
    _, uid, gid = unprivileged_user
    admins = job_id_of(shared_daemon.tao("-d", "unet", "sleep", "60"))
    theirs = tao_as(shared_daemon, unprivileged_user, "-d", "unet", "sleep", "60")
    assert theirs.returncode == 0, theirs.stderr
    theirs_id = job_id_of(theirs)
    shared_daemon.wait_for_status(admins, ("running",))
    shared_daemon.wait_for_status(theirs_id, ("running",))

    listed = json.loads(tao_as(shared_daemon, unprivileged_user, "list", "--all", "--json").stdout)
    assert [(job["id"], job["owner_uid"], job["owner_gid"]) for job in listed] == [(theirs_id, uid, gid)]
    assert {job["id"] for job in json.loads(shared_daemon.tao("list", "--json").stdout)} == {admins, theirs_id}

    for verb in (["logs", admins], ["stop", admins]):
        refused = tao_as(shared_daemon, unprivileged_user, *verb)
        assert refused.returncode != 0
        assert f"no job '{admins}'".encode() in refused.stderr  # the same answer as for a job that does not exist

    assert tao_as(shared_daemon, unprivileged_user, "stop", "--all").returncode == 0
    assert shared_daemon.job(theirs_id)["status"] == "cancelled"
    assert shared_daemon.job(admins)["status"] == "running"  # another user's stop --all leaves it alone
    assert shared_daemon.tao("stop", "--all").returncode == 0
    assert shared_daemon.job(admins)["status"] == "cancelled"


def test_the_socket_group_decides_who_may_connect(new_daemon, unprivileged_user, test_group) -> None:  # type: ignore[no-untyped-def]
    import os
    import shutil
    import tempfile
    from pathlib import Path

    group, gid = test_group
    root = Path(tempfile.mkdtemp(prefix="tao-group-"))
    root.chmod(0o755)
    try:
        daemon = new_daemon("--socket-mode", "0660", "--socket-group", group, root=root / "daemon").start()
        daemon.home = root
        socket_stat = os.stat(daemon.socket)
        assert (socket_stat.st_mode & 0o777, socket_stat.st_gid) == (0o660, gid)
        member = tao_as(daemon, unprivileged_user, "list", groups=[gid])
        assert member.returncode == 0, member.stderr
        outsider = tao_as(daemon, unprivileged_user, "list")
        assert outsider.returncode == 125
        assert b"permission denied: the socket admits its owner and, on a shared box, its group" in outsider.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)
