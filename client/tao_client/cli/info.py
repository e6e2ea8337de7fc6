"""`tao info`: the daemon, its task manifest, the Docker engine and GPUs."""

from __future__ import annotations

import json
from argparse import Namespace

from tao_client.cli._parser import Parser

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

    from tao_client.client import Client


def info_parser() -> Parser:
    parser = Parser(prog="tao info", description="The daemon, its task manifest, the Docker engine and GPUs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show each image's local presence and size")
    parser.add_argument("--json", action="store_true")
    return parser


def show_info(client: Client, args: Namespace) -> int:
    info = client.info(verbose=args.verbose)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    daemon, manifest, engine = info["daemon"], info["manifest"], info["engine"]
    # The pid and data dir come to admins only.
    pid = f", pid {daemon['pid']}" if "pid" in daemon else ""
    print(f"daemon:    {client.address.url} (tao-server {daemon['version']}{pid})")
    if "data_dir" in daemon:
        print(f"data dir:  {daemon['data_dir']}")
    if daemon.get("dashboard"):
        print(f"dashboard: {daemon['dashboard']} (`tao ui` signs you in)")
    if "database_error" in daemon:
        print(f"database:  {daemon['database_error']}")
    for run in daemon.get("unaccounted_runs", []):
        print(f"unaccounted run: {run['run_id']} (job {run['job_id']}, {run['state']}): not in the job table; left as it is")
    print(f"manifest:  {manifest['source']} (format {manifest['format_version']}, toolkit {manifest['toolkit_version'] or 'unknown'})")
    print(f"engine:    {_engine(engine)}")
    gpus = [f"{gpu['index']} ({_gpu_holder(gpu)})" for gpu in info["gpus"]]
    print(f"gpus:      {', '.join(gpus) if gpus else 'none'}{' [' + info['gpu_mode'] + ' mode]' if gpus else ''}")
    counts = daemon["jobs"]
    print(f"jobs:      {', '.join(f'{status} {count}' for status, count in sorted(counts.items())) or 'none yet'}")
    print("images:")
    for image in info["images"]:
        print(f"  {image['reference']}{_local(image) if args.verbose else ''}")
        print(f"    tasks: {', '.join(image['tasks'])}")
    return 0


def _engine(engine: dict[str, Any]) -> str:
    """The backend in a line: Docker's version and platform; another backend's own keys as they come."""
    if "error" in engine:
        return str(engine["error"])
    if engine.get("backend", "docker") == "docker":
        return f"Docker {engine['version']} (API {engine['api_version']}, {engine['os']}/{engine['arch']})"
    if engine.get("backend") == "slurm":
        nodes = "; ".join(
            f"{n['name']} {n['state']}, GPUs {n['gpus_total'] - n['gpus_used']}/{n['gpus_total']} free" for n in engine["nodes"]
        )
        return (
            f"Slurm, partition {engine['partition']}, runtime {engine['runtime']}, "
            f"GPUs {engine['gpus_free']}/{engine['gpus_total']} free\n"
            f"           nodes: {nodes or 'none'}\n           jobs submitted as {engine['submits_as']}"
        )
    return ", ".join(f"{key} {value}" for key, value in engine.items())


def _local(image: dict[str, Any]) -> str:
    local = image.get("local")
    if not local:
        return "  (not pulled)"
    return f"  ({local['size'] / 1e9:.2f} GB, {local['id'][:19]})"


def _gpu_holder(gpu: dict[str, Any]) -> str:
    if gpu.get("job"):
        return f"job {gpu['job']}"
    return "another user's job" if gpu.get("held") else "free"
