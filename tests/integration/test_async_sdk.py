"""The notebook SDK (`tao_client.AsyncClient`) against real daemons: a Unix socket, and TCP with a token and TLS.

No HTTP is mocked: each test drives a real `tao-server` on the real engine. Coroutines run with
`asyncio.run` inside plain tests.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tao_client import AsyncClient, AsyncJob, Client
from tao_client._errors import ApiError, DaemonUnreachable, JobNotFound
from tao_server.testing.daemon import Daemon
from tao_server.testing.registry import PASSWORD, USERNAME, HeldBlobs, remove_local
from tests.conftest import self_signed_certificate
from tests.integration.conftest import REPOSITORY, Gates, free_port, job_log, terminate_daemon

# Each test's HOME is empty (below): the SDK says, once, that it found no launcher config there.
pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::tao_client._errors.NoLaunchConfig")]

T = TypeVar("T")


@pytest.fixture(autouse=True)
def _empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK reads ~/.tao_mounts.json as `tao` does: these jobs get an empty HOME, never the account's own config."""
    home = tmp_path / "sdk-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("LAUNCHER_MOUNTS", raising=False)


def run(daemon: Daemon, body: Callable[[AsyncClient], Awaitable[T]], **options: Any) -> T:
    """`body(client)` on a fresh event loop, with an AsyncClient for the daemon's socket."""

    async def main() -> T:
        async with AsyncClient(options.pop("host", daemon.address), autostart=False, **options) as client:
            return await body(client)

    return asyncio.run(main())


def gated(gates: Gates, script: str) -> dict[str, Any]:
    """Submit arguments for a shell in the image that can wait on the test's gates."""
    return {
        "task": "unet",
        "subtask": "run",
        "args": ["sh", "-c", script],
        "launch_config": {"Mounts": [{"source": str(gates.root), "destination": "/gates"}]},
    }


def test_awaiting_a_job_returns_it_ended_with_its_exit_code(daemon: Daemon) -> None:
    async def body(client: AsyncClient) -> AsyncJob:
        job = await client.submit("detectnet_v2", "exit", ["3"])
        assert job.status == "queued"
        return await job

    job = run(daemon, body)
    assert (job.status, job.exit_code) == ("failed", 3)
    assert job.done


def test_followed_output_arrives_while_the_job_runs_and_ends_with_it(daemon: Daemon, gates: Gates) -> None:
    async def body(client: AsyncClient) -> tuple[bytes, AsyncJob]:
        job = await client.submit(**gated(gates, f"echo before; {gates.wait('go')}; echo after; exit 5"))
        seen = b""
        async for chunk in job.logs(follow=True):
            seen += chunk
            if seen == b"before\n":
                assert (await job.refresh()).status == "running"  # the output came while the job still waited
                gates.open("go")
        return seen, await job.refresh()

    seen, job = run(daemon, body)
    assert seen == b"before\nafter\n" == job_log(daemon, job.id)
    assert job.exit_code == 5


def test_logs_read_from_an_offset_what_is_there_now(daemon: Daemon) -> None:
    async def body(client: AsyncClient) -> tuple[bytes, bytes, list[bytes]]:
        job = await (await client.submit("detectnet_v2", "exit", ["0"]))
        return await client.logs(job.id), await client.logs(job.id, offset=8), [chunk async for chunk in job.logs(offset=8)]

    whole, tail, chunks = run(daemon, body)
    assert whole == b"exiting with 0\n"
    assert tail == whole[8:]
    assert chunks == [tail]


def test_wait_copies_the_output_to_a_stream(daemon: Daemon, tmp_path: Path) -> None:
    output = tmp_path / "out.txt"

    async def body(client: AsyncClient) -> AsyncJob:
        job = await client.submit("detectnet_v2", "train", ["-e", "", "-r", ""])
        with output.open("wb") as stream:
            return await job.wait(stream_to=stream)

    job = run(daemon, body)
    assert job.status == "succeeded"
    assert output.read_bytes().endswith(b"training finished\n")
    assert output.read_bytes() == job_log(daemon, job.id)


def test_cancel_ends_a_running_job_and_awaiting_it_says_cancelled(daemon: Daemon) -> None:
    async def body(client: AsyncClient) -> tuple[AsyncJob, AsyncJob]:
        job = await client.submit("unet", "sleep", ["300"])
        async for chunk in job.logs(follow=True):
            assert chunk.startswith(b"sleeping")  # the task is up: its trap is set
            break
        asked = await job.cancel()
        return asked, await job

    asked, job = run(daemon, body)
    assert asked.id == job.id
    assert job.status == "cancelled"


def test_the_client_reads_the_daemons_jobs_info_images_and_tasks(daemon: Daemon) -> None:
    async def body(client: AsyncClient) -> tuple[Any, ...]:
        job = await (await client.submit("ssd", "exit", ["0"], job_id="sdk-listed"))
        listed = await client.jobs()
        only_succeeded = await client.jobs(["succeeded"], page_size=1)  # one page a request: the cursor is followed
        return job, listed, only_succeeded, await client.job(job.id), await client.info(), await client.images(), await client.tasks()

    job, listed, succeeded, again, info, images, tasks = run(daemon, body)
    assert job.id in [each.id for each in listed]
    assert {each.status for each in succeeded} == {"succeeded"} and len(succeeded) >= 1
    assert again.data == job.data
    assert info["daemon"]["version"] and isinstance(images, list)
    assert "detectnet_v2" in [task["name"] for task in tasks["tasks"]]


def test_the_async_client_sees_exactly_what_the_sync_client_sees(daemon: Daemon) -> None:
    async def body(client: AsyncClient) -> AsyncJob:
        return await (await client.submit("ssd", "argv", ["a b", "ç"]))

    job = run(daemon, body)
    with Client(daemon.address, autostart=False) as sync:
        assert sync.job(job.id).data == job.data
        assert sync.logs(job.id) == b"a b\0\xc3\xa7\0"


def test_refusals_are_the_sync_clients_exceptions(daemon: Daemon) -> None:
    async def body(client: AsyncClient) -> list[BaseException]:
        errors: list[BaseException] = []
        for call in (client.job("no-such-job"), client.submit("no_such_task"), client.cancel("no-such-job")):
            try:
                await call
            except ApiError as exc:
                errors.append(exc)
        try:
            async for _ in client.follow_logs("no-such-job"):
                pass
        except ApiError as exc:
            errors.append(exc)
        return errors

    missing, unknown, cancel, follow = run(daemon, body)
    assert isinstance(missing, JobNotFound) and missing.status_code == 404 and missing.code == "job_not_found"
    assert isinstance(cancel, JobNotFound) and isinstance(follow, JobNotFound)
    assert type(unknown) is ApiError and unknown.status_code == 422 and unknown.code == "unknown_task"
    with Client(daemon.address, autostart=False) as sync, pytest.raises(ApiError) as sync_unknown:
        sync.submit("no_such_task")
    assert (sync_unknown.value.code, sync_unknown.value.message) == (unknown.code, unknown.message)  # type: ignore[attr-defined]


def test_nothing_answering_is_daemon_unreachable_in_the_sync_clients_words(tmp_path: Path) -> None:
    address = f"unix://{tmp_path / 'nothing.sock'}"

    async def body() -> None:
        async with AsyncClient(address, autostart=False) as client:
            await client.info()

    with pytest.raises(DaemonUnreachable) as refused:
        asyncio.run(body())
    with Client(address, autostart=False) as sync, pytest.raises(DaemonUnreachable) as sync_refused:
        sync.info()
    assert str(refused.value) == str(sync_refused.value)
    # An address given that does not answer is a service that is down: tao starts nothing there.
    assert str(refused.value).startswith(f"cannot reach the tao daemon at {address}: the service at that address is not answering")


def test_a_job_and_a_job_list_show_as_escaped_html_and_as_a_dataframe(daemon: Daemon) -> None:
    hostile = "<script>alert('x')</script>"

    async def body(client: AsyncClient) -> tuple[AsyncJob, Any]:
        job = await (await client.submit("ssd", "argv", [hostile]))
        return job, await client.jobs()

    job, listed = run(daemon, body)
    page = job._repr_html_()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page and "<script>" not in page
    assert f"<td>{job.id}</td>" in page and "<td>succeeded</td>" in page
    table = listed._repr_html_()
    assert table.count("<tr>") == len(listed) + 1 and "<script>" not in table
    frame = listed.to_pandas()
    assert list(frame["id"]) == [each.id for each in listed]
    assert frame.set_index("id").loc[job.id, "args"] == [hostile]


@pytest.fixture
def tls_daemon(new_daemon, tmp_path: Path) -> tuple[str, str, Path]:  # type: ignore[no-untyped-def]
    """A daemon on TCP with TLS beside its socket: (its https url, an admin's token, the certificate)."""
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    daemon = new_daemon("--host", "127.0.0.1", "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)).start()
    return f"https://127.0.0.1:{port}", daemon.token("--user", "root", "--admin"), cert


def test_over_tls_with_a_token_from_the_environment(tls_daemon, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url, token, cert = tls_daemon
    monkeypatch.setenv("TAO_HOST", url)
    monkeypatch.setenv("TAO_TOKEN", token)
    monkeypatch.setenv("TAO_CA_CERT", str(cert))

    async def body() -> tuple[AsyncJob, bytes]:
        async with AsyncClient() as client:
            job = await (await client.submit("ssd", "exit", ["7"]))
            return job, b"".join([chunk async for chunk in job.logs(follow=True)])

    job, output = asyncio.run(body())
    assert (job.exit_code, output) == (7, b"exiting with 7\n")


def test_over_tls_a_missing_token_and_an_untrusted_certificate_are_clear_errors(tls_daemon, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url, token, cert = tls_daemon
    for name in ("TAO_TOKEN", "TAO_CA_CERT"):
        monkeypatch.delenv(name, raising=False)

    async def info(**options: Any) -> Any:
        async with AsyncClient(url, **options) as client:
            return await client.info()

    with pytest.raises(ApiError) as no_token:
        asyncio.run(info(ca_cert=str(cert)))
    assert (no_token.value.status_code, no_token.value.code) == (401, "unauthorized")
    with pytest.raises(DaemonUnreachable) as untrusted:
        asyncio.run(info(token=token))
    assert "certificate verify failed" in str(untrusted.value) and "set TAO_CA_CERT" in str(untrusted.value)
    assert asyncio.run(info(token=token, ca_cert=str(cert)))["daemon"]["version"]


def test_list_pages_are_read_to_the_end(daemon: Daemon) -> None:
    async def body(client: AsyncClient) -> tuple[int, int]:
        jobs = [await client.submit("ssd", "exit", ["0"]) for _ in range(3)]
        await asyncio.gather(*(asyncio.ensure_future(job.wait()) for job in jobs))
        return len(await client.jobs(page_size=1)), len(await client.jobs(page_size=500))

    paged, whole = run(daemon, body)
    assert paged == whole >= 3


def test_events_of_a_job_without_a_pull_hold_no_pull(daemon: Daemon) -> None:
    async def body(client: AsyncClient) -> tuple[dict[str, Any], list[Any]]:
        job = await (await client.submit("ssd", "exit", ["0"]))
        return await client.events(job.id), [progress async for progress in job.pull_progress()]

    events, progress = run(daemon, body)
    assert all(event["type"] == "image" for event in events["events"]), json.dumps(events)  # at most the image it started from
    assert progress == []


def test_a_pulling_jobs_progress_shows_layer_by_layer_in_its_table(new_daemon, tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    reg, reference, _, own_layer = registry
    # The image's own layer waits for the test, so the pull is under way for as long as the test looks.
    relay = HeldBlobs(reg.host, own_layer)
    held_reference = reference.replace(reg.host, relay.host)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps({"format_version": 2.0, "dockers": {REPOSITORY: {"1": {"docker_registry": relay.host, "tasks": ["ssd"]}}}})
    )

    async def body(client: AsyncClient) -> tuple[str, AsyncJob]:
        await client.login(relay.host, USERNAME, PASSWORD)
        job = await client.submit("ssd", "exit", ["0"])
        mid_pull = ""
        async for progress in job.pull_progress():
            if progress.layers and not mid_pull:
                assert not progress.finished and progress.image == held_reference
                mid_pull = job._repr_html_()
                relay.release()
        assert job.pull is not None and job.pull.finished
        return mid_pull, await job

    try:
        daemon = new_daemon(manifest=manifest).start()
        mid_pull, job = run(daemon, body)
    finally:
        relay.close()
        remove_local(held_reference)
    assert "<th>status</th><td>pulling</td>" in mid_pull
    assert 'class="tao-pull"' in mid_pull and "<progress " in mid_pull and f"{held_reference}: " in mid_pull
    assert (job.status, job.exit_code) == ("succeeded", 0)
    assert "pulled, " in job._repr_html_()


def test_following_survives_a_daemon_restart_without_losing_or_doubling_a_byte(new_daemon, gates: Gates) -> None:  # type: ignore[no-untyped-def]
    daemon = new_daemon().start()

    async def body(client: AsyncClient) -> tuple[bytes, AsyncJob]:
        job = await client.submit(**gated(gates, f"echo one; {gates.wait('go')}; echo two; exit 6"))
        seen = b""
        async for chunk in job.logs(follow=True):
            seen += chunk
            if seen == b"one\n":
                daemon.stop(signal.SIGKILL)  # the stream breaks; the job's container runs on
                daemon.start()  # adopts the job; the follower reconnects from byte 4
                gates.open("go")
        return seen, job

    seen, job = run(daemon, body)
    assert seen == b"one\ntwo\n"
    assert (job.status, job.exit_code) == ("failed", 6)  # the job as refreshed at its end


def test_with_nothing_answering_on_the_local_socket_a_daemon_is_started(
    tmp_path: Path, manifest_file: Path, monkeypatch: pytest.MonkeyPatch, docker_client
) -> None:  # type: ignore[no-untyped-def]
    runtime, data_dir = tmp_path / "xdg-run", tmp_path / "data"
    runtime.mkdir()
    for name in ("TAO_HOST", "TAO_NO_AUTOSTART", "LAUNCHER_MOUNTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("TAO_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TAO_MANIFEST", str(manifest_file))

    async def body() -> AsyncJob:
        async with AsyncClient() as client:
            return await (await client.submit("detectnet_v2", "exit", ["0"]))

    try:
        job = asyncio.run(body())
    finally:
        ended = terminate_daemon(data_dir)
    assert (job.status, job.exit_code) == ("succeeded", 0)
    assert ended, "the daemon the client started did not end within 60 s of SIGTERM"


def test_pull_streams_progress_then_the_images_end_and_logins_are_listed(new_daemon, tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    reg, reference, _, _ = registry
    remove_local(reference)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps({"format_version": 2.0, "dockers": {REPOSITORY: {"1": {"docker_registry": reg.host, "tasks": ["ssd"]}}}})
    )
    daemon = new_daemon(manifest=manifest).start()

    async def body(client: AsyncClient) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        await client.login(reg.host, USERNAME, PASSWORD)
        logins = await client.logins()
        lines = [line async for line in client.pull(tasks=["ssd"])]
        return logins, lines, await client.images(), await client.logout(reg.host)

    try:
        logins, lines, images, forgotten = run(daemon, body)
    finally:
        remove_local(reference)
    assert [(login["registry"], login["username"]) for login in logins] == [(reg.host, USERNAME)]
    assert lines[-1] == {"type": "done", "image": reference, "error": None}
    assert any(line["type"] == "progress" for line in lines)
    assert [image["present"] for image in images if image["reference"] == reference] == [True]
    assert forgotten["registry"] == reg.host
