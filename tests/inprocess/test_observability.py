"""GPU use per job and GET /metrics, in process: the real app, runner, scheduler, sampler thread and SQLite.

The fake engine holds jobs (`hold NAME`) until the test releases them; the GPUs are NVML's stand-in
(tests/fake_nvml.py), whose utilisation and memory the test sets while a job holds them.
"""

from __future__ import annotations

import logging
import pwd
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.websockets import WebSocketDisconnect

from tests.fake_nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeNvml, two_gpus
from tests.inprocess.conftest import Caller, Daemon
from tests.inprocess.test_progress import append, epoch, held

FAST = {"gpus": "0,1", "gpu_sample_interval": 0.5, "gpu_idle_after": 1.0}


def until(condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll for `condition`; the timeout is a safety net only."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)
    return found


def scraped(caller: Caller) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = caller.get("/metrics")
    assert answer.status_code == 200, answer.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def scrape_token(daemon: Daemon) -> Caller:
    _, text = daemon.client.app.state.services.tokens.create_scrape("prometheus")  # type: ignore[attr-defined]
    return Caller(daemon.client, text)


def gpu_job(daemon: Daemon, name: str, device: str) -> str:
    job = daemon.admin.submit("detectnet_v2", "hold", name, gpu_indices=[device])
    daemon.admin.wait_for_logs(job["id"], f"holding {name}\n".encode())
    return str(job["id"])


# -- who may read /metrics ---------------------------------------------------------------------------


def test_metrics_answer_admins_and_scrape_tokens_in_prometheus_text_format(daemon: Daemon) -> None:
    for caller in (daemon.admin, scrape_token(daemon)):
        answer = caller.get("/metrics")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert 'tao_jobs{status="running"} 0.0' in answer.text


def test_a_users_token_may_not_read_metrics_and_no_token_is_a_401(daemon: Daemon) -> None:
    refused = daemon.alice.get("/metrics")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "not_allowed")
    assert "GET /metrics is for admins" in refused.json()["error"]["message"]
    missing = daemon.client.get("/metrics")
    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, "Bearer")


def test_a_scrape_token_reads_metrics_and_nothing_else(daemon: Daemon) -> None:
    scraper = scrape_token(daemon)
    job = daemon.admin.submit("detectnet_v2", "exit", "0")["id"]
    document = daemon.admin.get("/openapi.json").json()
    # Every route the reference says takes a token, the reference and the dashboard's parts and actions besides.
    routes = [
        (method.upper(), path) for path, operations in document["paths"].items() for method, op in operations.items() if "security" in op
    ]
    routes += [("GET", path) for path in ("/openapi.json", "/docs", "/redoc", "/ui/parts/jobs", f"/ui/parts/job/{job}", "/ui/parts/gpus")]
    routes += [("POST", f"/ui/jobs/{job}/rerun"), ("POST", "/ui/links")]
    assert ("GET", "/metrics") in routes and len(routes) > 25
    for method, path in routes:
        if path == "/metrics":
            continue
        concrete = path.replace("{job_id}", job).replace("{registry}", "nvcr.io").replace("{port}", "8080")
        answer = daemon.client.request(method, concrete, headers=scraper.headers, json={})
        assert (answer.status_code, answer.json()["error"]["code"]) == (403, "not_allowed"), f"{method} {path}"
        assert "it reads GET /metrics and nothing else" in answer.json()["error"]["message"]
    for websocket in (f"/v1/jobs/{job}/logs", f"/v1/jobs/{job}/terminal"):
        with pytest.raises(WebSocketDisconnect), daemon.client.websocket_connect(websocket, headers=scraper.headers) as ws:
            ws.receive_json()


# -- GPU use per job ---------------------------------------------------------------------------------


def test_a_job_holding_a_gpu_has_its_use_as_series_beside_its_training(start_daemon: Callable[..., Daemon]) -> None:
    library = two_gpus()
    library.gpus[1].utilization, library.gpus[1].used_mib = 93, 30000
    daemon = start_daemon(nvml=library, **FAST)
    job = gpu_job(daemon, "busy", "1")
    found = until(lambda: daemon.admin.get(f"/v1/jobs/{job}/metrics").json()["series"].get("gpu_memory_used"), "GPU samples")
    answer = daemon.admin.get(f"/v1/jobs/{job}/metrics").json()
    assert answer["sampled"] == ["gpu_utilization", "gpu_memory_used"]
    assert answer["series"]["gpu_utilization"][0]["value"] == 93.0
    assert (found[0]["epoch"], found[0]["step"], found[0]["value"]) == (None, None, 30000.0)
    csv = daemon.admin.get(f"/v1/jobs/{job}/metrics", params={"format": "csv"}).text.splitlines()
    assert csv[1].startswith("gpu_memory_used,,,30000.0,")
    assert daemon.admin.job(job)["condition"] is None  # busy: nothing to say
    daemon.engine.release("busy")
    daemon.admin.wait_for(job, "succeeded")
    assert daemon.admin.get(f"/v1/jobs/{job}/metrics").json()["series"]["gpu_utilization"]  # kept after the end


def test_an_idle_gpu_gives_its_job_a_condition_and_events_until_it_works_again(start_daemon: Callable[..., Daemon]) -> None:
    library = two_gpus()
    daemon = start_daemon(nvml=library, **FAST)
    job = gpu_job(daemon, "lazy", "0")
    condition = until(lambda: daemon.admin.job(job)["condition"], "the idle condition")
    assert condition.startswith("GPU 0 idle for ") and condition.endswith(" s")
    (listed,) = [each for each in daemon.admin.get("/v1/jobs").json()["jobs"] if each["id"] == job]
    assert listed["condition"].startswith("GPU 0 idle for ")  # `tao list` shows it beside the status
    idle = scraped(daemon.admin)[("tao_gpu_idle_seconds", (("gpu", "0"), ("uuid", library.gpus[0].uuid)))]
    assert idle >= 1.0
    library.gpus[0].utilization = 80
    until(lambda: daemon.admin.job(job)["condition"] is None, "the condition cleared")
    told = [event["data"] for event in daemon.admin.get(f"/v1/jobs/{job}/events").json()["events"] if event["type"] == "gpu_idle"]
    assert [(data["gpu"], data["idle"]) for data in told] == [("0", True), ("0", False)]
    assert told[0]["message"].startswith("GPU 0 idle for ") and "(under 5% utilisation)" in told[0]["message"]
    assert told[1]["message"].startswith("GPU 0 busy again after ")
    daemon.engine.release("lazy")


def test_without_nvml_nothing_is_sampled_and_nothing_fails(start_daemon: Callable[..., Daemon], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tao_server.observability"):
        daemon = start_daemon(nvml=FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND), **FAST)
        job = gpu_job(daemon, "blind", "0")
        seen = scraped(daemon.admin)
        daemon.engine.release("blind")
        daemon.admin.wait_for(job, "succeeded")
    assert daemon.admin.get(f"/v1/jobs/{job}/metrics").json()["sampled"] == []
    assert seen[("tao_gpus", (("state", "held"),))] == 1
    assert not [name for name, _ in seen if name.startswith(("tao_gpu_utilization", "tao_gpu_memory"))]
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("tao_server.observability")]
    assert said == [(logging.INFO, "GPU use is not sampled: NVML cannot start here (NVML Shared Library Not Found)")]


def test_a_status_file_may_not_write_into_the_gpu_series(start_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    daemon = start_daemon()
    job = held(daemon.admin, "forged", tmp_path, "-r", "/workspace/results")
    append(tmp_path / "results" / "status.json", {"epoch": 1, "graphical": {"gpu_utilization": 100.0, "loss": 0.5}})
    until(lambda: daemon.admin.get(f"/v1/jobs/{job['id']}/metrics").json()["series"].get("loss"), "the loss")
    answer = daemon.admin.get(f"/v1/jobs/{job['id']}/metrics").json()
    assert set(answer["series"]) == {"loss"} and answer["skipped"] == {"reserved_key": 1}
    daemon.engine.release("forged")


# -- what /metrics says ------------------------------------------------------------------------------


def test_metrics_count_jobs_and_gpus_and_give_each_running_jobs_progress(start_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    library = two_gpus()
    library.gpus[0].utilization, library.gpus[0].used_mib = 61, 2048
    daemon = start_daemon(nvml=library, **FAST)
    daemon.admin.wait_for(daemon.admin.submit("detectnet_v2", "exit", "3", gpus="none")["id"], "failed")
    training = held(daemon.admin, "train", tmp_path, "-r", "/workspace/results", gpu_indices=["0"])
    append(tmp_path / "results" / "status.json", epoch(20, 0.4, of=80))
    waiting = daemon.admin.submit("detectnet_v2", "hold", "later", gpus="2")  # both GPUs: waits for GPU 0
    key = ("tao_job_progress_ratio", (("job_id", training["id"]), ("owner", pwd.getpwuid(0).pw_name)))
    seen = until(
        lambda: (
            (s := scraped(daemon.admin)).get(key)
            and s.get(("tao_gpu_utilization_ratio", (("gpu", "0"), ("uuid", library.gpus[0].uuid))))
            and s
        ),
        "progress and GPU 0 read",
    )
    assert seen[key] == 0.25
    assert seen[("tao_jobs", (("status", "running"),))] == 1
    assert seen[("tao_jobs", (("status", "failed"),))] == 1
    assert seen[("tao_jobs", (("status", "queued"),))] == 1
    assert seen[("tao_queue_length", ())] == 1
    assert (seen[("tao_gpus", (("state", "held"),))], seen[("tao_gpus", (("state", "free"),))]) == (1, 1)
    assert seen[("tao_gpu_utilization_ratio", (("gpu", "0"), ("uuid", library.gpus[0].uuid)))] == 0.61
    assert seen[("tao_gpu_memory_used_bytes", (("gpu", "0"), ("uuid", library.gpus[0].uuid)))] == 2048 * 1024 * 1024
    daemon.admin.post(f"/v1/jobs/{waiting['id']}/cancel")
    daemon.engine.release("train")
    daemon.admin.wait_for(training["id"], "succeeded")
    after = scraped(daemon.admin)
    assert key not in after  # running jobs only: an ended job's progress leaves the exposition
    assert after[("tao_jobs", (("status", "succeeded"),))] == 1
