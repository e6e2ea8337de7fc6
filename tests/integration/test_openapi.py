"""The daemon keeps its OpenAPI document: schemathesis against a real `tao-server` over TCP, with real tokens.

`st run` (the real CLI) fetches /openapi.json with the token and sends each operation its
boundary cases, a fixed number of generated requests from a fixed seed, and stateful sequences
(submit, then read, follow and cancel the job), as a user and as an admin. Every answer must be
one the document gives: no server error, a documented status code and content type, a body that
matches its schema, and a stream read to its end. Nothing waits on the clock: the request
timeout is a safety net for a hung daemon, and schemathesis sets no deadline on a case.
The CLI rather than schemathesis' pytest loader, whose lazy schema (`from_fixture`) fails on
pytest 9.2; the CLI also runs the boundary and stateful phases.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import Daemon, executable
from tests.integration.conftest import free_port, make_daemon
from tests.integration.schemathesis_hooks import REFUSING_REGISTRY

pytestmark = pytest.mark.integration

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance"
EXAMPLES = 25  # generated requests per operation, for each caller
SEED = 20261129
SAFETY_NET = 120  # seconds for one request: only a hung daemon reaches it


@pytest.fixture(scope="module")
def conformance_daemon(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[Daemon]:
    """A daemon whose jobs never start a container: its one image is absent and lives on a registry that refuses.

    `POST /v1/jobs` records real jobs, which end at once in `error` (pull policy never, or a pull
    refused), so their logs, events and cancels are real, and no container is ever created.
    """
    root = tmp_path_factory.mktemp("conformance")
    manifest = root / "manifest.json"
    entry = {"docker_registry": REFUSING_REGISTRY, "tasks": ["detectnet_v2", "unet"]}
    manifest.write_text(
        json.dumps({"format_version": 2.0, "toolkit_version": "conformance", "dockers": {"tao-absent/toolkit": {"1": entry}}})
    )
    port = free_port()
    daemon = make_daemon(root, manifest, "--host", "127.0.0.1", "--port", str(port), "--pull", "never").start()
    daemon.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield daemon
    daemon.stop()
    daemon.remove_containers()


@pytest.mark.parametrize("admin", [False, True], ids=["user", "admin"])
def test_every_answer_is_one_the_openapi_document_gives(conformance_daemon: Daemon, admin: bool, tmp_path: Path) -> None:
    # A user sees their own jobs and may pull only the manifest's images; an admin sees everything.
    token = conformance_daemon.token(
        *(("--user", "root", "--admin") if admin else ("--user", "conformance", "--uid", "4242", "--gid", "4242"))
    )
    # POST /v1/credentials is kept: the hooks send every login to a registry that refuses at once.
    # An admin may pull any image by name, from the internet, which tests never reach: the user's run covers that route.
    excluded = ["--exclude-operation-id", "pull_images_v1_images_pull_post"] if admin else []
    command = [
        executable("st"), "run", f"{conformance_daemon.url}/openapi.json",  # type: ignore[attr-defined]
        "--header", f"Authorization: Bearer {token}",
        "--checks", CHECKS, "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "1",
        "--suppress-health-check", "all", "--request-timeout", str(SAFETY_NET),
        "--generation-database", "none", "--no-color", *excluded,
    ]  # fmt: skip
    run = subprocess.run(
        command,
        cwd=tmp_path,  # no schemathesis.toml is picked up, nothing is left in the work tree
        env={**conformance_daemon.env(), "SCHEMATHESIS_HOOKS": str(HOOKS)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=280,  # a safety net under pytest's own 300 s: the run takes about 12 s here
    )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert "Traceback" not in conformance_daemon.server_log()  # a stream cut short after its 200 logs one
