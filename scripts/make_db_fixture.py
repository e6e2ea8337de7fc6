#!/usr/bin/env python3
"""Write a data dir as an older release of the daemon left it, for the upgrade tests.

Usage: python scripts/make_db_fixture.py [COMMIT] [OUT_DIR]
       (defaults: 2b365f9, the last commit at schema 0005; tests/fixtures/previous-release)

The upgrade tests need a database that old code really wrote, not one this code's models made:
so this checks COMMIT out into a temp git worktree, installs it into a temp venv, builds that
commit's sample toolkit image under a tag of its own, and runs that commit's `tao-server` on a
temp data dir against the real Docker engine. Its own `tao` client then submits a handful of
jobs (one that succeeds with output, one that exits 3, one cancelled while it runs, one with a
mount, an env and a GPU in env mode, and one by a token user over TCP under a chosen id), and its
`tao-server token create` makes that token. The daemon is stopped with SIGTERM, and OUT_DIR gets:

  tao.db         the SQLite file, with the WAL the daemon leaves on SIGTERM folded into it
  logs/          each job's .log and .events files, as that daemon wrote them
  fixture.json   the commit, the schema revision, the token, and each job as that daemon
                 reported it: id, status, exit code, owner, log size and first output line

The data dir's daemon-id is left out: containers are marked with it, and two daemons started
on copies of one fixture must not adopt each other's runs. Everything temporary (worktree,
venv, data dir, image tag) is removed at the end, whether it worked or not. Needs git, Docker
and Debian's busybox-static (scripts/prepare installs both), and the package index pip uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_COMMIT = "2b365f9"
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "previous-release"
DB_FILE = "tao.db"
TOKEN_USER = ("fixture-user", 2001, 2001)  # not a local account: the token carries its uid and gid
FIXTURE_ENV = ("FIXTURE_ENV", "from the previous release")


def main() -> None:
    commit = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_COMMIT
    out = Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else DEFAULT_OUT
    full = _run("git", "-C", str(ROOT), "rev-parse", "--verify", f"{commit}^{{commit}}").strip()
    with tempfile.TemporaryDirectory(prefix="tao-fixture-") as temp:
        work = Path(temp)
        with _worktree(full, work / "src") as source, _image(source, f"tao-fixture/toolkit:{full[:12]}") as image:
            venv = _install(source, work / "venv")
            with _daemon(venv, work, _manifest(source, image, work / "manifest.json")) as daemon:
                jobs = _submit_jobs(daemon)
                token_secret = daemon.token_secret
            _write(out, work / "data", full, token_secret, jobs)
    print(f"make_db_fixture: {out} holds {len(jobs)} jobs from {full[:12]}")


# -- the old release, installed --------------------------------------------------------------------


@contextlib.contextmanager
def _worktree(commit: str, path: Path) -> Iterator[Path]:
    _run("git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)


def _install(source: Path, venv: Path) -> Path:
    _run(sys.executable, "-m", "venv", str(venv))
    # Its own build dir, so nothing built by another checkout slips in.
    _run(str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", f"{source}[server]")
    return venv


@contextlib.contextmanager
def _image(source: Path, tag: str) -> Iterator[str]:
    """That commit's sample toolkit image, under a tag no other checkout uses."""
    # The commit's own script: named build-sample-image before the scripts became .py files.
    script = next(
        path for path in (source / "scripts" / "build_sample_image.py", source / "scripts" / "build-sample-image") if path.exists()
    )
    _run(sys.executable, str(script), tag)
    try:
        yield tag
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], check=False, capture_output=True)


def _manifest(source: Path, image: str, path: Path) -> Path:
    """That commit's sample manifest, its tasks mapped to the image built above."""
    sample = json.loads((source / "examples" / "sample-toolkit" / "manifest.json").read_text())
    entries = [entry for tags in sample["dockers"].values() for entry in tags.values()]
    repository, tag = image.rsplit(":", 1)
    sample["dockers"] = {repository: {tag: entries[0]}}
    path.write_text(json.dumps(sample, indent=2))
    return path


# -- the old daemon ----------------------------------------------------------------------------------


class OldDaemon:
    """That release's `tao-server` on a socket and a loopback port, and its `tao` to drive it."""

    def __init__(self, venv: Path, work: Path, manifest: Path) -> None:
        self.venv = venv
        self.data_dir = work / "data"
        self.socket = work / "run" / "tao.sock"
        self.home = work / "home"
        self.home.mkdir()
        self.mounted = work / "mounted"
        self.mounted.mkdir()
        self.port = _free_port()
        self.log = work / "server.log"
        self.token_secret = ""
        command = [
            str(venv / "bin" / "tao-server"), "--data-dir", str(self.data_dir), "--socket", str(self.socket),
            "--port", str(self.port), "--manifest", str(manifest), "--gpus", "0,1", "--gpu-mode", "env",
            "--stop-timeout", "5",
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, env=self.env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def env(self, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("TAO_", "LAUNCHER_"))}
        env.update(HOME=str(self.home), TAO_HOST=f"unix://{self.socket}", TAO_NO_AUTOSTART="1")
        env.update(extra)
        return env

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.tao("list", check=False).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"make_db_fixture: the old tao-server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def tao(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        command = [str(self.venv / "bin" / "tao"), *args]
        done = subprocess.run(command, env=self.env(**(env or {})), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            sys.exit(f"make_db_fixture: tao {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done

    def make_token(self) -> str:
        user, uid, gid = TOKEN_USER
        made = _run(
            str(self.venv / "bin" / "tao-server"), "token", "create", "--data-dir", str(self.data_dir),
            "--user", user, "--uid", str(uid), "--gid", str(gid),
        )  # fmt: skip
        self.token_secret = made.strip()
        return self.token_secret

    def wait_for_output(self, job_id: str, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.tao("logs", job_id).stdout:
            if time.monotonic() > deadline:
                sys.exit(f"make_db_fixture: job {job_id} never printed {text!r}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it: the daemon closes its database cleanly."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        if self.process.returncode not in (0, -signal.SIGTERM):
            sys.exit(f"make_db_fixture: the old tao-server exited {self.process.returncode}:\n{self.log.read_text()[-3000:]}")


@contextlib.contextmanager
def _daemon(venv: Path, work: Path, manifest: Path) -> Iterator[OldDaemon]:
    daemon = OldDaemon(venv, work, manifest)
    try:
        daemon.wait_ready()
        yield daemon
        daemon.stop()
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()


def _submit_jobs(daemon: OldDaemon) -> list[dict[str, Any]]:
    """The handful of jobs, each ended the way it is meant to; returns the daemon's own list of them."""
    detached = ("-d", "--gpus", "none")
    ids = [
        _job_id(daemon.tao(*detached, "detectnet_v2", "train", "-r", "/tmp/results")),
        _job_id(daemon.tao(*detached, "classification", "exit", "3")),
    ]
    cancelled = _job_id(daemon.tao(*detached, "detectnet_v2", "sleep", "300"))
    daemon.wait_for_output(cancelled, "sleeping 300")
    daemon.tao("stop", cancelled)
    ids.append(cancelled)
    mounts = daemon.home / "mounts.json"
    mounts.write_text(json.dumps({
        "Mounts": [{"source": str(daemon.mounted), "destination": "/workspace/data", "read_only": True}],
        "Envs": [{"variable": FIXTURE_ENV[0], "value": FIXTURE_ENV[1]}],
    }))  # fmt: skip
    ids.append(
        _job_id(daemon.tao("-d", "--gpus", "1", "--mounts", str(mounts), "yolo_v4", "env", FIXTURE_ENV[0], "NVIDIA_VISIBLE_DEVICES"))
    )
    token = daemon.make_token()
    tcp = {"TAO_HOST": f"http://127.0.0.1:{daemon.port}", "TAO_TOKEN": token}
    ids.append(_job_id(daemon.tao("-d", "--gpus", "none", "--id", "token-job", "unet", "id", env=tcp)))
    for job_id in ids:
        daemon.tao("logs", "-f", job_id, check=False)  # returns once the job has ended
    listed = json.loads(daemon.tao("list", "--all", "--json").stdout)
    return [job for job in listed if job["id"] in ids]


def _job_id(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout.strip().splitlines()[-1]


# -- the fixture -------------------------------------------------------------------------------------


def _write(out: Path, data_dir: Path, commit: str, token_secret: str, jobs: list[dict[str, Any]]) -> None:
    _fold_wal(data_dir / DB_FILE)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy2(data_dir / DB_FILE, out / DB_FILE)
    shutil.copytree(data_dir / "logs", out / "logs")
    record = {
        "commit": commit,
        "subject": _run("git", "-C", str(ROOT), "log", "-1", "--format=%s", commit).strip(),
        "schema_revision": _schema_revision(out / DB_FILE),
        "made_by": "scripts/make_db_fixture.py",
        "token": {"user": TOKEN_USER[0], "uid": TOKEN_USER[1], "gid": TOKEN_USER[2], "secret": token_secret},
        "jobs": [_job_record(job, out / "logs") for job in sorted(jobs, key=lambda job: job["created_at"])],
    }
    (out / "fixture.json").write_text(json.dumps(record, indent=2) + "\n")


def _fold_wal(db: Path) -> None:
    """Write the WAL the daemon left back into the database file, so the fixture is that one file.

    The daemon never closes its pool, so even a clean stop leaves `tao.db-wal` and `-shm`; its
    committed pages are the same data, and the last connection to close checkpoints and removes them.
    """
    with contextlib.closing(sqlite3.connect(db)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    leftovers = [path.name for path in db.parent.glob(f"{db.name}-*")]
    if leftovers:
        sys.exit(f"make_db_fixture: {leftovers} still beside {db} after a checkpoint")


def _schema_revision(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(revision)


def _job_record(job: dict[str, Any], logs: Path) -> dict[str, Any]:
    log = (logs / f"{job['id']}.log").read_bytes()
    kept = ("id", "task", "subtask", "args", "status", "exit_code", "owner_uid", "owner_gid", "gpu_request", "gpus", "mounts", "envs")
    return {
        **{key: job.get(key) for key in kept},
        "log_bytes": len(log),
        "first_line": log.decode().splitlines()[0] if log else "",
    }


# -- small things ------------------------------------------------------------------------------------


def _run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"make_db_fixture: {' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


if __name__ == "__main__":
    main()
