"""Notifications (figure 24): how soon a job's end reaches a receiver, and what a notify URL costs a submission.

24a: from the end the daemon records (the job's `finished_at`) to a receiver on 127.0.0.1 holding
     the signed `job.ended` POST, one job at a time on the real engine.
24b: a submission's round trip (POST /v1/jobs on the Unix socket, kept alive, every job left
     queued) with one notify URL, against the same submission without; alternating.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from harness import Daemon, Figure, alternate, bench_daemon, unix_connection

from tao_server.testing.receiver import Receiver

GROUPS = ("24",)  # what bench/run.py asks of this module


@dataclass
class NotifyScale:
    ends: int
    submissions: int

    @classmethod
    def full(cls) -> NotifyScale:
        return cls(ends=50, submissions=500)

    @classmethod
    def quick(cls) -> NotifyScale:
        return cls(ends=5, submissions=50)


def run_group(group: str, scale: NotifyScale) -> list[Figure]:
    receiver = Receiver().start()
    policy = Path(tempfile.mkdtemp(prefix="tao-bench-policy-")) / "policy.toml"
    policy.write_text(f'[default]\nnotify_to = ["127.0.0.1:{receiver.port}"]\n')
    daemon = bench_daemon("--policy", str(policy), "--max-running-jobs", "1").start()
    try:
        return [end_to_receiver(daemon, receiver, scale), submission_cost(daemon, receiver, scale)]
    finally:
        daemon.discard()
        receiver.stop()


def end_to_receiver(daemon: Daemon, receiver: Receiver, scale: NotifyScale) -> Figure:
    samples = []
    for _ in range(scale.ends):
        job = daemon.request("POST", "/v1/jobs", {"task": "detectnet_v2", "subtask": "exit", "args": ["0"], "notify": [receiver.url]})
        job_id: str = job["id"]
        got = receiver.wait_for(lambda seen: any(_ended(each.body, job_id) for each in seen))  # noqa: B023  (called here, at once)
        arrived = next(each.arrived_at for each in got if _ended(each.body, job_id))
        finished = datetime.fromisoformat(daemon.job(job["id"])["finished_at"]).timestamp()
        samples.append(arrived - finished)
    return Figure(
        "24a",
        "job end recorded -> signed job.ended POST at a receiver on loopback",
        "s",
        samples,
        "median < 50 ms",
        statistics.median(samples) < 0.05,
    )


def submission_cost(daemon: Daemon, receiver: Receiver, scale: NotifyScale) -> Figure:
    blocker = daemon.request("POST", "/v1/jobs", {"task": "detectnet_v2", "subtask": "sleep", "args": ["900"]})
    daemon.wait_for_status(blocker["id"], ("running",), timeout=600)
    connection = unix_connection(daemon.socket, timeout=60)
    plain = json.dumps({"task": "detectnet_v2", "subtask": "exit", "args": ["0"]}).encode()
    notifying = json.dumps({"task": "detectnet_v2", "subtask": "exit", "args": ["0"], "notify": [receiver.url]}).encode()

    def post(body: bytes) -> float:
        started = time.perf_counter()
        connection.request("POST", "/v1/jobs", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 201:
            raise RuntimeError(f"submission answered {response.status}")
        return time.perf_counter() - started

    try:
        with_url, without = alternate(scale.submissions, lambda: post(notifying), lambda: post(plain))
    finally:
        connection.close()
    ratio = statistics.median(with_url) / statistics.median(without)
    return Figure(
        "24b",
        "POST /v1/jobs with one notify URL (checked) vs without",
        "s",
        with_url,
        "ratio <= 1.2",
        ratio <= 1.2,
        baseline=without,
        baseline_name="no notify URL",
    )


def _ended(body: bytes, job_id: str) -> bool:
    event = json.loads(body)
    return bool(event["event"] == "job.ended" and event["job_id"] == job_id)
