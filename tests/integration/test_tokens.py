"""TCP callers: bearer tokens say who they are, TLS keeps the tokens private on the wire."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tao_server.testing.daemon import Daemon, executable
from tests.conftest import self_signed_certificate
from tests.integration.conftest import free_port, job_id_of, write_mounts

pytestmark = pytest.mark.integration


@pytest.fixture
def tcp_daemon(new_daemon) -> Daemon:  # type: ignore[no-untyped-def]
    port = free_port()
    daemon = new_daemon("--host", "127.0.0.1", "--port", str(port)).start()
    daemon.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return daemon


def _tcp_env(daemon: Daemon, token: str | None, **extra: str) -> dict[str, str]:
    env = daemon.env(TAO_HOST=daemon.url, **extra)  # type: ignore[attr-defined]
    env.pop("TAO_TOKEN", None)
    if token is not None:
        env["TAO_TOKEN"] = token
    return env


def test_tcp_needs_a_valid_token_and_revocation_is_immediate(tcp_daemon: Daemon) -> None:
    url = tcp_daemon.url  # type: ignore[attr-defined]
    assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200  # health checks carry no token
    for path in ("/v1/jobs", "/v1/info", "/v1/tasks", "/v1/images", "/v1/credentials"):
        refused = httpx.get(f"{url}{path}", timeout=30)
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"]["code"] == "unauthorized"
    no_token = tcp_daemon.tao("list", env=_tcp_env(tcp_daemon, None))
    assert no_token.returncode == 125
    assert b"needs a bearer token over TCP: set TAO_TOKEN" in no_token.stderr
    forged = tcp_daemon.tao("list", env=_tcp_env(tcp_daemon, "tao_000000000000_guess"))
    assert forged.returncode == 125
    assert b"the bearer token is not valid" in forged.stderr

    token = tcp_daemon.token("--user", "root", "--admin")
    assert tcp_daemon.tao("ssd", "exit", "0", env=_tcp_env(tcp_daemon, token)).returncode == 0
    token_id = token.split("_")[1]
    listed = subprocess.run(
        [executable("tao-server"), "token", "list", "--data-dir", str(tcp_daemon.data_dir)], capture_output=True, check=True
    )
    assert token_id.encode() in listed.stdout
    subprocess.run([executable("tao-server"), "token", "revoke", token_id, "--data-dir", str(tcp_daemon.data_dir)], check=True)
    revoked = tcp_daemon.tao("list", env=_tcp_env(tcp_daemon, token))
    assert revoked.returncode == 125
    assert b"the bearer token is not valid" in revoked.stderr


def test_the_api_reference_answers_token_holders_only(tcp_daemon: Daemon) -> None:
    url = tcp_daemon.url  # type: ignore[attr-defined]
    readers = {"Authorization": f"Bearer {tcp_daemon.token('--user', 'reader', '--uid', '4243', '--gid', '4243')}"}
    for path in ("/openapi.json", "/docs", "/redoc"):
        for headers in ({}, {"Authorization": "Bearer tao_000000000000_guess"}):
            refused = httpx.get(f"{url}{path}", headers=headers, timeout=30)
            assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthorized"), path
            assert "/v1/jobs" not in refused.text
        assert httpx.get(f"{url}{path}", headers=readers, timeout=30).status_code == 200, path  # any user's token: not only admins'
    document = httpx.get(f"{url}/openapi.json", headers=readers, timeout=30).json()
    assert "/v1/jobs/{job_id}/logs" in document["paths"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_tao_info_shows_a_user_their_own_jobs_and_an_admin_the_daemon(tcp_daemon: Daemon) -> None:
    users = _tcp_env(tcp_daemon, tcp_daemon.token("--user", "ci", "--uid", "1500", "--gid", "1500"))
    admins = _tcp_env(tcp_daemon, tcp_daemon.token("--user", "root", "--admin"))
    assert tcp_daemon.tao("ssd", "exit", "0", env=admins).returncode == 0
    shown = tcp_daemon.tao("info", env=users)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode()
    assert f"daemon:    {tcp_daemon.url} (tao-server " in text and "jobs:      none yet" in text  # type: ignore[attr-defined]
    assert ", pid " not in text and "data dir:" not in text
    text = tcp_daemon.tao("info", env=admins).stdout.decode()
    assert ", pid " in text and f"data dir:  {tcp_daemon.data_dir}" in text and "jobs:      succeeded 1" in text


def test_the_daemon_keeps_only_a_hash_of_each_token(tcp_daemon: Daemon) -> None:
    token = tcp_daemon.token("--user", "root", "--admin")
    secret = token.split("_", 2)[2]  # tao_<id>_<secret>
    stored = b"".join(path.read_bytes() for path in tcp_daemon.data_dir.rglob("*") if path.is_file())
    assert secret.encode() not in stored
    assert token.encode() not in stored


def test_a_token_acts_as_its_user(tcp_daemon: Daemon, unprivileged_user) -> None:  # type: ignore[no-untyped-def]
    name, uid, gid = unprivileged_user
    users_token = tcp_daemon.token("--user", name)
    admin_token = tcp_daemon.token("--user", "root", "--admin")
    out = Path(tempfile.mkdtemp(prefix="tao-token-"))
    try:
        os.chown(out, uid, gid)
        mounts = write_mounts(out.parent / f"{out.name}.json", {"Mounts": [{"source": str(out), "destination": "/out"}]})
        result = tcp_daemon.tao("unet", "run", "touch", "/out/made", env=_tcp_env(tcp_daemon, users_token, LAUNCHER_MOUNTS=str(mounts)))
        assert result.returncode == 0, result.stderr
        assert (os.stat(out / "made").st_uid, os.stat(out / "made").st_gid) == (uid, gid)  # not root's

        privileged = write_mounts(out.parent / f"{out.name}-p.json", {"DockerOptions": {"privileged": True}})
        refused = tcp_daemon.tao("unet", "run", "true", env=_tcp_env(tcp_daemon, users_token, LAUNCHER_MOUNTS=str(privileged)))
        assert refused.returncode == 125
        assert f"does not give uid {uid} ({name})".encode() in refused.stderr

        admins = job_id_of(tcp_daemon.tao("-d", "unet", "sleep", "30", env=_tcp_env(tcp_daemon, admin_token)))
        theirs = json.loads(tcp_daemon.tao("list", "--all", "--json", env=_tcp_env(tcp_daemon, users_token)).stdout)
        assert [job["owner_uid"] for job in theirs] == [uid]
        stop = tcp_daemon.tao("stop", admins, env=_tcp_env(tcp_daemon, users_token))
        assert stop.returncode != 0 and f"no job '{admins}'".encode() in stop.stderr
        everyone = json.loads(tcp_daemon.tao("list", "--all", "--json", env=_tcp_env(tcp_daemon, admin_token)).stdout)
        assert len(everyone) == 2
        tcp_daemon.tao("stop", admins, env=_tcp_env(tcp_daemon, admin_token))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_log_websocket_over_tcp_needs_the_token(tcp_daemon: Daemon) -> None:
    token = tcp_daemon.token("--user", "root", "--admin")
    job_id = job_id_of(tcp_daemon.tao("-d", "ssd", "exit", "0", env=_tcp_env(tcp_daemon, token)))
    tcp_daemon.wait_for_status(job_id, ("succeeded",))
    address = tcp_daemon.url.replace("http://", "ws://") + f"/v1/jobs/{job_id}/logs"  # type: ignore[attr-defined]

    async def follow(headers: dict[str, str]) -> dict[str, object]:
        async with websockets.connect(address, additional_headers=headers, open_timeout=60) as socket:
            while True:
                frame = await socket.recv()
                if isinstance(frame, str) and (message := json.loads(frame))["type"] == "end":
                    return message

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(follow({}))
    assert refused.value.response.status_code in (401, 403)
    assert asyncio.run(follow({"Authorization": f"Bearer {token}"}))["status"] == "succeeded"


def test_tls_listener_beyond_loopback(new_daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    # All addresses, so the refusal rule for non-loopback listeners applies; the test only connects to 127.0.0.1.
    daemon = new_daemon("--host", "0.0.0.0", "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)).start()
    token = daemon.token("--user", "root", "--admin")
    url = f"https://127.0.0.1:{port}"
    trusted = daemon.tao("ssd", "exit", "4", env=daemon.env(TAO_HOST=url, TAO_TOKEN=token, TAO_CA_CERT=str(cert)))
    assert trusted.returncode == 4, trusted.stderr
    untrusted = daemon.tao("list", env=daemon.env(TAO_HOST=url, TAO_TOKEN=token))
    assert untrusted.returncode == 125
    assert b"certificate verify failed" in untrusted.stderr and b"set TAO_CA_CERT" in untrusted.stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)  # plain HTTP gets nothing from the TLS port
    assert daemon.tao("list").returncode == 0  # the Unix socket stays plain


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "root"], b"a token acting as uid 0 is root on the box; make it with --admin"),
        (["--user", "no-such-account-here"], b"'no-such-account-here' is not a local account; give --uid and --gid"),
        ([], b"give --user: who the token acts as (or --scrape, for a token that only reads /metrics)"),
        (["--scrape", "--uid", "1500"], b"a scrape token acts as no account: it takes no --uid or --gid"),
        (["--scrape", "--admin"], b"argument --admin: not allowed with argument --scrape"),
    ],
)
def test_token_create_refuses_what_it_cannot_make_safely(tcp_daemon: Daemon, args: list[str], message: bytes) -> None:
    result = subprocess.run(
        [executable("tao-server"), "token", "create", "--data-dir", str(tcp_daemon.data_dir), *args], capture_output=True, timeout=60
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == b""


def test_a_token_users_gpu_cap_holds_while_their_jobs_wait(new_daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.toml"
    policy.write_text("[user.ci]\nmax_gpus = 1\n")  # a remote user with no local account
    port = free_port()
    daemon = new_daemon("--host", "127.0.0.1", "--port", str(port), "--gpus", "0,1", "--gpu-mode", "env", "--policy", str(policy)).start()
    daemon.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    ci = _tcp_env(daemon, daemon.token("--user", "ci", "--uid", "1500", "--gid", "1500"))
    first = job_id_of(daemon.tao("-d", "--gpus", "1", "unet", "sleep", "60", env=ci))
    daemon.wait_for_status(first, ("running",))
    second = job_id_of(daemon.tao("-d", "--gpus", "1", "unet", "sleep", "60", env=ci))
    time.sleep(1.0)
    assert daemon.job(second)["status"] == "queued"  # a GPU is free, but ci already holds their one
    assert daemon.tao("stop", first, env=ci).returncode == 0
    daemon.wait_for_status(second, ("running",))
    daemon.tao("stop", second, env=ci)


def test_users_may_pull_only_the_manifests_images(tcp_daemon: Daemon, unprivileged_user) -> None:  # type: ignore[no-untyped-def]
    users = {"Authorization": f"Bearer {tcp_daemon.token('--user', unprivileged_user[0])}"}
    url = tcp_daemon.url  # type: ignore[attr-defined]
    refused = httpx.post(f"{url}/v1/images/pull", timeout=30, json={"images": ["127.0.0.1:5999/private/model:1"]}, headers=users)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "refused_by_policy"
    assert "is not an image of this daemon's manifest" in refused.json()["error"]["message"]
