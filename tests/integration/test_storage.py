"""A full disk under the daemon, on a tmpfs the test mounts: job errors that name the path, never hangs.

The log directory alone on a small disk, then the whole data dir (the database with it): jobs end
with what they printed kept, reads go on, submissions are refused with 507 while nothing can be
written, and everything recovers by itself once space returns. A database on a filesystem turned
read-only is refused saying so; one deleted under the daemon stops new work, and the next daemon
leaves the runs it cannot account for running.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import Daemon
from tests.integration.conftest import containers_gone, job_containers, job_id_of, until

pytestmark = [pytest.mark.integration, pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")]


class SmallDisk:
    """A tmpfs of a few MB, and a filler file that takes whatever room is left."""

    def __init__(self, path: Path, megabytes: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0700", "tmpfs", str(path)], check=True)
        self.path = path

    def fill(self, leave: int = 0) -> None:
        """Take all the room, then give back `leave` bytes."""
        filler = self.path / "filler"
        with open(filler, "ab") as file:
            try:
                while True:
                    file.write(b"\0" * 65536)
                    file.flush()
            except OSError:
                pass
        os.truncate(filler, max(0, filler.stat().st_size - leave))

    def free(self) -> None:
        (self.path / "filler").unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def small_disks() -> Iterator[Callable[[Path, int], SmallDisk]]:
    made: list[SmallDisk] = []

    def make(path: Path, megabytes: int) -> SmallDisk:
        made.append(SmallDisk(path, megabytes))
        return made[-1]

    yield make
    for disk in made:
        disk.unmount()


def test_a_full_log_disk_ends_the_job_naming_the_log_and_keeps_its_output(new_daemon, small_disks, tmp_path: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = new_daemon(root=tmp_path / "d")
    disk = small_disks(daemon.data_dir / "logs", 4)
    daemon.start()
    disk.fill(leave=256 * 1024)
    run = daemon.tao("detectnet_v2", "lines", "200000")  # about 9 MB of output, into 256 KB of room
    assert run.returncode == 125, run.stderr
    [job] = _jobs(daemon)
    log = daemon.data_dir / "logs" / f"{job['id']}.log"
    assert f"cannot write the job's log {log}: No space left on device".encode() in run.stderr
    assert (job["status"], job["exit_code"]) == ("error", 125)
    assert "what it printed until then is kept" in job["error"]
    kept = log.read_bytes()
    assert run.stdout == kept  # the client printed exactly what was kept
    assert kept.startswith(b"1 the quick brown fox")
    assert containers_gone(docker_client, job["id"])  # stopped, not left running unwatched
    follow = daemon.tao("logs", "-f", job["id"], timeout=60)  # ends at once: the job is over
    assert (follow.returncode, follow.stdout) == (125, kept)

    disk.free()
    log.unlink()
    again = daemon.tao("detectnet_v2", "exit", "0")
    assert (again.returncode, again.stdout) == (0, b"exiting with 0\n")


def test_a_full_data_disk_refuses_submissions_keeps_reads_and_recovers(new_daemon, small_disks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "d"
    disk = small_disks(root / "data", 16)
    daemon: Daemon = new_daemon(root=root).start()
    assert daemon.tao("detectnet_v2", "exit", "0").returncode == 0
    ticking = job_id_of(daemon.tao("-d", "detectnet_v2", "ticks", "1000000", "0.005"))
    daemon.wait_for_output(ticking, b"tick 3\n")
    follower = daemon.popen_tao("logs", "-f", ticking)
    disk.fill()

    # Once the disk takes nothing more, the ticking job's log fails and its end is kept in memory.
    ended = daemon.wait_for_status(ticking, ("error",), timeout=120)
    assert "cannot write the job's log" in ended["error"] and "No space left on device" in ended["error"]
    out, _ = follower.communicate(timeout=60)  # the follower is not left hanging
    assert follower.returncode == 125
    assert out == (daemon.data_dir / "logs" / f"{ticking}.log").read_bytes()

    refused = _submit_until_refused(daemon)
    assert refused["code"] == "storage_full"
    assert f"cannot write the job table {daemon.data_dir / 'tao.db'}" in refused["message"]
    assert "free space on that disk" in refused["message"]
    assert _logs_without_jobs(daemon) == set()  # the refused job left no empty log behind
    assert next(job["id"] for job in _jobs(daemon)) == ticking  # reads go on
    assert daemon.tao("list", "--all").returncode == 0

    disk.free()
    until(lambda: _stored_status(daemon, ticking) == "error", "the kept end is written once there is room")
    again = daemon.tao("detectnet_v2", "exit", "0")
    assert (again.returncode, again.stdout) == (0, b"exiting with 0\n")


def test_a_read_only_filesystem_is_named_as_such_never_as_a_full_disk(small_disks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tao_server import db
    from tao_server.errors import StorageFull
    from tao_server.jobs.log_files import LogStore
    from tao_server.jobs.store import JobStore
    from tao_server.models import Job

    disk = small_disks(tmp_path / "ro", 4)
    path = disk.path / "tao.db"
    made = db.make_engine(path)
    db.upgrade(made)
    with made.connect() as connection:  # a write-ahead log needs its -shm file written: a read-only disk cannot open one
        connection.exec_driver_sql("PRAGMA journal_mode=DELETE")
    made.dispose()
    subprocess.run(["mount", "-o", "remount,ro", str(disk.path)], check=True)

    with pytest.raises(StorageFull) as refused:
        JobStore(db.make_engine(path)).insert(Job(id="refused", task="unet", image="tao-test/toolkit:1"))
    assert f"cannot write the job table {path}: attempt to write a readonly database" in refused.value.message
    assert "its filesystem is mounted read-only: remount it read-write" in refused.value.message
    assert "free space" not in refused.value.message
    with pytest.raises(StorageFull) as log_refused:
        LogStore(disk.path).create("refused")
    assert log_refused.value.message == (
        f"cannot create the job's log {disk.path / 'refused.log'}: Read-only file system; "
        "its filesystem is mounted read-only: remount it read-write"
    )


def test_a_database_deleted_under_the_daemon_refuses_work_and_its_runs_outlive_the_restart(
    new_daemon, tmp_path: Path, docker_client
) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = new_daemon(root=tmp_path / "d").start()
    running = job_id_of(daemon.tao("-d", "unet", "run", "sh", "-c", "echo up; sleep 600"))
    daemon.wait_for_output(running, b"up")
    db = daemon.data_dir / "tao.db"
    db.unlink()

    refused = daemon.tao("detectnet_v2", "exit", "0")
    assert refused.returncode == 125
    assert f"the job database {db} was deleted while the daemon ran".encode() in refused.stderr
    with daemon.http() as client:
        health = client.get("/healthz").json()
    assert health["status"] == "failing" and str(db) in health["database"]
    assert f"database:  the job database {db} was deleted".encode() in daemon.tao("info").stdout

    daemon.stop()
    daemon.start()  # on a new, empty database
    [container] = job_containers(docker_client, running)
    assert docker_client.containers.get(container).status == "running"  # not taken for a stray: the table cannot account for it
    shown = daemon.tao("info").stdout.decode()
    assert f"unaccounted run: {container} (job {running}, active): not in the job table" in shown
    with daemon.http() as client:
        assert client.get("/healthz").json() == {"status": "ok"}


def _logs_without_jobs(daemon: Daemon) -> set[str]:
    """The log files of jobs the table does not hold."""
    logged = {path.stem for path in (daemon.data_dir / "logs").glob("*.log")}
    return logged - {job["id"] for job in _jobs(daemon)}


def _submit_until_refused(daemon: Daemon) -> dict[str, str]:
    """Submit until the database cannot take a job (its write-ahead log may have room for a few)."""
    with daemon.http() as client:
        for _ in range(200):
            answer = client.post("/v1/jobs", json={"task": "detectnet_v2", "subtask": "exit", "args": ["0"]})
            if answer.status_code == 507:
                error: dict[str, str] = answer.json()["error"]
                return error
            assert answer.status_code == 201, answer.text
    raise AssertionError("a full disk never refused a submission")


def _jobs(daemon: Daemon) -> list[dict[str, Any]]:
    with daemon.http() as client:
        jobs: list[dict[str, Any]] = client.get("/v1/jobs").json()["jobs"]
    return jobs


def _stored_status(daemon: Daemon, job_id: str) -> str:
    with sqlite3.connect(f"file:{daemon.data_dir / 'tao.db'}?mode=ro", uri=True) as db:
        [(status,)] = db.execute("SELECT status FROM job WHERE id = ?", (job_id,)).fetchall()
    return str(status)
