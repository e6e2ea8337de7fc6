"""`tao show JOB`: one job in full, to tell it apart and explain how it ended.

Status, exit code and error, times, training progress, the command line, image and digest (from
the job's `image` event), mounts, envs with secrets masked, GPUs, events, and the last lines of its output.
"""

from __future__ import annotations

import json
from argparse import Namespace

from tao_client.cli._common import write_text
from tao_client.cli._parser import Parser
from tao_client.cli.jobs import command_text, duration, status_text
from tao_common.envs import masked

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

    from tao_client.client import Client

TAIL_BYTES = 64 * 1024  # what is read of the output for its last lines: enough for 20 of any task's
LINE_BYTES = 256  # for more lines (-n): this much a line
MAX_TAIL_BYTES = 16 * 1024**2
MAX_EVENT_PAGES = 20  # 20,000 events: a pull's progress of a very large image, and more


def show_parser() -> Parser:
    parser = Parser(
        prog="tao show",
        description="One job in full: status, exit code, error, times, image and digest, mounts, envs (secrets masked), "
        "GPUs, events, and the last lines of its output.",
    )
    parser.add_argument("job_id", metavar="JOB_ID")
    parser.add_argument("-n", "--lines", type=int, default=20, metavar="N", help="how many of the last lines of output (default 20)")
    parser.add_argument("--json", action="store_true", help='{"job", "events", "output_tail"}, the envs masked as shown')
    return parser


def show_job(client: Client, args: Namespace) -> int:
    job = client.job(args.job_id).data
    job = {**job, "envs": masked(job.get("envs") or {})}
    events = _all_events(client, job["id"])
    lines = max(args.lines, 0)
    tail_bytes = min(max(TAIL_BYTES, lines * LINE_BYTES), MAX_TAIL_BYTES)
    tail = last_lines(client.logs(job["id"], tail=tail_bytes), lines, tail_bytes)
    if args.json:
        write_text(json.dumps({"job": job, "events": events, "output_tail": tail}, indent=2) + "\n")
        return 0
    shown = [f"{name + ':':<11}{value}" for name, value in fields(job, events)]
    shown += ["events:", *(f"  {line}" for line in event_lines(events) or ["(none)"])]
    shown.append(f"output (last {lines} lines):" if tail else "output: (none)")
    shown += [f"  {line}" for line in tail.splitlines()]
    write_text("".join(f"{line}\n" for line in shown))
    return 0


def fields(job: dict[str, Any], events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, text) for each line of the job's head, those with nothing to say left out."""
    image = _image_event(events)
    digest = ", ".join(image.get("digests") or []) or image.get("id") or ""
    exit_code = "" if job["exit_code"] is None else f" (exit code {job['exit_code']})"
    command = ["tao", *(part for part in (job["group"], job["task"]) if part)]
    lines = [
        ("job", job["id"]),
        ("status", status_text(job) + exit_code),
        ("error", job.get("error") or ""),
        ("command", " ".join(command) + " " + command_text(job)),
        ("owner", "" if job.get("owner_uid") is None else f"uid {job['owner_uid']}"),
        ("created", _when(job["created_at"])),
        ("started", _when(job.get("started_at"))),
        ("finished", _when(job.get("finished_at"))),
        ("duration", duration(job)),
        ("progress", _progress(job)),
        ("image", job["image"]),
        ("digest", digest),
        ("container", job.get("container_id") or ""),
        ("gpus", ",".join(job.get("gpus") or []) or _asked(job.get("gpu_request") or "")),
        ("mounts", "\n".join(_mount(mount) for mount in job.get("mounts") or []) or "none"),
        ("envs", "\n".join(f"{name}={value}" for name, value in job["envs"].items()) or "none"),
        ("options", ", ".join(f"{name}={_option(name, value)}" for name, value in (job.get("docker_options") or {}).items())),
        ("notify", "\n".join(job.get("notify") or [])),
    ]
    return [(label, text.replace("\n", "\n" + " " * 11)) for label, text in lines if text.strip()]


def _progress(job: dict[str, Any]) -> str:
    """The training's progress and its last message, or why it cannot be followed."""
    from tao_common.progress import progress_text

    shown = job.get("progress")
    if shown:
        kpi = "  ".join(f"{name} {value:.6g}" for name, value in (shown.get("kpi") or {}).items())
        return "\n".join(part for part in (progress_text(shown), shown.get("message") or "", kpi) if part)
    return f"unavailable: {job['progress_unavailable']}" if job.get("progress_unavailable") else ""


def event_lines(events: list[dict[str, Any]]) -> list[str]:
    """A line per event; a pull's progress (an event per layer and step) folded into one line per image."""
    lines: list[str | tuple[str, float]] = []  # (image, time) stands for a pull's line, written once it is all read
    pulls: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        kind, data = event["type"], event["data"]
        if kind != "pull":
            lines.append(f"{_clock(event['time'])}  {kind} {_event_text(kind, data)}")
            continue
        image = data.get("image", "")
        if image not in pulls:
            pulls[image] = []
            lines.append((image, event["time"]))
        pulls[image].append(data)
    return [line if isinstance(line, str) else _pull_line(line[0], line[1], pulls[line[0]]) for line in lines]


def _pull_line(image: str, started: float, progress: list[dict[str, Any]]) -> str:
    # The engine names the tag as the layer of its "Pulling from" line: not a layer.
    layers = {data["layer"] for data in progress if data.get("layer") and not data.get("status", "").startswith("Pulling from")}
    return f"{_clock(started)}  pull {image}: {len(layers)} layers, last: {progress[-1].get('status', '')}"


def last_lines(output: bytes, count: int, asked: int = TAIL_BYTES) -> str:
    """The last `count` lines of the last `asked` bytes of the output (the first dropped when the tail began inside it)."""
    text = output.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if len(output) >= asked and lines:
        lines = lines[1:]
    return "\n".join(lines[-count:]) + "\n" if count and lines else ""


def _all_events(client: Client, job_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    for _ in range(MAX_EVENT_PAGES):
        page = client.events(job_id, after)
        events += page["events"]
        if not page["events"]:
            break
        after = page["next_after"]
    return events


def _image_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    found = [event["data"] for event in events if event["type"] == "image"]
    return found[-1] if found else {}


def _event_text(kind: str, data: dict[str, Any]) -> str:
    if kind == "gpus":
        return ",".join(data.get("devices") or []) or "none"
    if kind == "image":
        return f"{data.get('reference', '')} {data.get('id') or ''}".strip()
    if kind == "status":  # a new message in the task's status file
        return " ".join(str(part) for part in (data.get("status"), data.get("message")) if part)
    if kind == "notify":
        return notify_text(data)
    if kind == "gpu_idle":  # a GPU the job holds idle for long, or busy again after it
        return str(data.get("message", ""))
    return " ".join(f"{name}={value}" for name, value in data.items())


def notify_text(data: dict[str, Any]) -> str:
    """A notification's try in words: "job.ended to https://hooks.example/****abcd: try 2 delivered (answered 200 OK)"."""
    line = f"{data.get('event', '')} to {data.get('url', '')}: try {data.get('try', '?')} {data.get('outcome', '')}"
    if data.get("message"):
        line += f" ({data['message']})"
    if data.get("next_try_at"):
        line += f", next try at {_when(data['next_try_at'])}"
    return line


def _mount(mount: dict[str, Any]) -> str:
    return f"{mount['source']} -> {mount['destination']}" + (" (read-only)" if mount.get("read_only") else "")


def _option(name: str, value: Any) -> str:
    if name in ("shm_size", "mem_limit") and isinstance(value, int):
        return binary_size(value)
    return value if isinstance(value, str) else json.dumps(value)


def binary_size(count: int) -> str:
    """Bytes in the units `docker run --shm-size` reads (1024s): 64 MiB, 16 GiB, 1.5 GiB."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        scale = 1024 ** ("KMGT".index(unit[0]) + 1)
        if count >= scale:
            return f"{count / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} B"


def _asked(request: str) -> str:
    return f"none yet (asks {request.partition(':')[2] or request})" if request else "none"


def _when(value: str | None) -> str:
    return value[:19].replace("T", " ") + " UTC" if value else ""


def _clock(seconds: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.gmtime(seconds))
