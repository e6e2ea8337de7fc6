"""Validation of the launcher config (`~/.tao_mounts.json`): `Mounts`, `Envs` and `DockerOptions`.

The client sends the file's parsed JSON; every rule lives here so that the CLI, notebooks and
dashboards get the same checks. Each error names the file, the key, the value and what is allowed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn

from tao_server.access.paths import ProtectedPaths, within
from tao_server.errors import InvalidLaunchConfig

DEFAULT_SHM_SIZE = 64 * 1024**2  # 64 MB, the launcher's documented default

TOP_LEVEL_KEYS = ("Mounts", "Envs", "DockerOptions")
MOUNT_KEYS = ("source", "destination", "read_only")
ENV_KEYS = ("variable", "value")
ULIMIT_NAMES = (
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
)
IPC_MODES = ("private", "shareable", "host", "none")
MAX_CPUS = 4096
# Sizes and ulimits are int64 in the engine's API (Docker's HostConfig, as Slurm's limits): a larger
# one would pass here and fail at the engine, with a message that names no field.
MAX_INT64 = 2**63 - 1

# A mount here would pick GPUs (accept-nvidia-visible-devices-as-volume-mounts), past the scheduler.
_RUNTIME_DESTINATIONS = ("/var/run/nvidia-container-devices", "/run/nvidia-container-devices")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")
_PORT_KEY_RE = re.compile(r"^(\d{1,5})(?:/(tcp|udp|sctp))?$")


@dataclass
class LaunchConfig:
    """The validated, normalised config, ready to store on a job and hand to the executor."""

    mounts: list[dict[str, Any]] = field(default_factory=list)
    envs: dict[str, str] = field(default_factory=dict)
    docker_options: dict[str, Any] = field(default_factory=lambda: {"shm_size": DEFAULT_SHM_SIZE})
    # Each mount's source as the file gives it (normalised, symlinks kept): users write paths in
    # their arguments that way, while `mounts` holds the resolved path the engine mounts.
    given_sources: list[str] = field(default_factory=list)


def validate(raw: Any, source: str | None, protected: ProtectedPaths | None = None) -> LaunchConfig:
    """Check `raw` (the parsed launcher config, or None when the user has none)."""
    check = _Checker(source or "launcher config")
    if raw is None:
        return LaunchConfig()
    check.type(raw, dict, "(top level)", "an object with keys " + ", ".join(TOP_LEVEL_KEYS))
    check.keys(raw, TOP_LEVEL_KEYS, "(top level)")
    mounts = _mounts(check, raw.get("Mounts", []), protected or ProtectedPaths())
    return LaunchConfig(
        mounts=mounts,
        envs=_envs(check, raw.get("Envs", [])),
        docker_options=_docker_options(check, raw.get("DockerOptions", {})),
        given_sources=[os.path.normpath(entry["source"]) for entry in raw.get("Mounts", [])],
    )


def _mounts(check: _Checker, raw: Any, protected: ProtectedPaths) -> list[dict[str, Any]]:
    check.type(raw, list, "Mounts", "a list of {source, destination} objects")
    mounts: list[dict[str, Any]] = []
    destinations: dict[str, int] = {}
    for index, entry in enumerate(raw):
        key = f"Mounts[{index}]"
        check.type(entry, dict, key, "an object with keys source, destination")
        check.keys(entry, MOUNT_KEYS, key)
        source = check.required_str(entry, "source", key)
        destination = check.required_str(entry, "destination", key)
        read_only = entry.get("read_only", False)
        check.type(read_only, bool, f"{key}.read_only", "true or false")
        if not os.path.isabs(source):
            check.fail(f"{key}.source", source, "must be an absolute path on the daemon's host")
        if (unseen := protected.unseen(os.path.normpath(source))) is not None:
            check.fail(f"{key}.source", source, unseen)
        if not os.path.exists(source):
            check.fail(f"{key}.source", source, "does not exist on the daemon's host; create it or fix the path")
        real = os.path.realpath(source)
        if (refusal := protected.unseen(real) or protected.refusal(real)) is not None:
            shown = "" if real == os.path.normpath(source) else f"(resolves to {real}) "
            check.fail(f"{key}.source", source, shown + refusal)
        if not os.path.isabs(destination):
            check.fail(f"{key}.destination", destination, "must be an absolute path inside the container")
        destination = "/" + os.path.normpath(destination).lstrip("/")  # normpath keeps a leading "//"
        if any(within(destination, d) for d in _RUNTIME_DESTINATIONS):
            check.fail(
                f"{key}.destination",
                destination,
                "is where the NVIDIA container runtime looks for the devices to give; ask for GPUs with `tao --gpus N`",
            )
        if destination in destinations:
            check.fail(f"{key}.destination", destination, f"is already the destination of Mounts[{destinations[destination]}]")
        destinations[destination] = index
        mounts.append({"source": real, "destination": destination, "read_only": read_only})
    return mounts


def _envs(check: _Checker, raw: Any) -> dict[str, str]:
    check.type(raw, list, "Envs", "a list of {variable, value} objects")
    envs: dict[str, str] = {}
    for index, entry in enumerate(raw):
        key = f"Envs[{index}]"
        check.type(entry, dict, key, "an object with keys variable, value")
        check.keys(entry, ENV_KEYS, key)
        name = check.required_str(entry, "variable", key)
        if not _ENV_NAME_RE.match(name):
            check.fail(f"{key}.variable", name, "is not a valid variable name (letters, digits and _, not starting with a digit)")
        if "value" not in entry:
            check.fail(f"{key}.value", _NO_VALUE, "is missing")
        value = entry["value"]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            check.fail(f"{key}.value", value, "must be a string or a number")
        if name == "NVIDIA_VISIBLE_DEVICES":
            check.fail(
                f"{key}.variable",
                name,
                "is set by the daemon from the GPUs it gives the job; ask for GPUs with `tao --gpus N` or `--gpu-index`",
            )
        if isinstance(value, str) and "\0" in value:
            check.fail(f"{key}.value", value, "contains a NUL byte, which an environment variable cannot hold")
        envs[name] = value if isinstance(value, str) else str(value)
    return envs


def _docker_options(check: _Checker, raw: Any) -> dict[str, Any]:
    check.type(raw, dict, "DockerOptions", "an object")
    check.keys(raw, tuple(_OPTION_CHECKS), "DockerOptions")
    options: dict[str, Any] = {"shm_size": DEFAULT_SHM_SIZE}
    for name, value in raw.items():
        options[name] = _OPTION_CHECKS[name](check, value, f"DockerOptions.{name}")
    return options


def parse_size(value: Any) -> int | None:
    """Bytes from 16G / "512m" / "1.5 GiB" / 1048576; None when it is not a size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if not isinstance(value, str):
        return None
    match = _SIZE_RE.match(value)
    if not match:
        return None
    number, unit, _ = match.groups()
    size = int(Decimal(number) * _SIZE_UNITS[unit.lower()])  # exact: a float would round large sizes
    return size if size > 0 else None


def _size(check: _Checker, value: Any, key: str) -> int:
    size = parse_size(value)
    if size is None:
        check.fail(key, value, 'is not a size; use bytes or a number with k, m, g or t (e.g. "16G")')
    if size > MAX_INT64:
        check.fail(key, value, f"is too large; the largest size allowed is {MAX_INT64} bytes (2^63 - 1, just under 8388608T)")
    return size


def _ulimits(check: _Checker, value: Any, key: str) -> list[dict[str, Any]]:
    check.type(value, dict, key, 'an object such as {"memlock": -1, "stack": 67108864}')
    limits = []
    for name, limit in value.items():
        if name not in ULIMIT_NAMES:
            check.fail(f"{key}.{name}", name, f"is not a ulimit; valid names: {', '.join(ULIMIT_NAMES)}")
        soft, hard = _ulimit_values(check, limit, f"{key}.{name}")
        limits.append({"name": name, "soft": soft, "hard": hard})
    return limits


def _ulimit_values(check: _Checker, limit: Any, key: str) -> tuple[int, int]:
    allowed = 'a number (-1 for unlimited), "soft:hard", or {"soft": n, "hard": n}'
    if isinstance(limit, bool):
        check.fail(key, limit, f"must be {allowed}")
    if isinstance(limit, int):
        pair = (limit, limit)
    elif isinstance(limit, str) and re.fullmatch(r"-?\d+(:-?\d+)?", limit.strip()):
        parts = [int(p) for p in limit.strip().split(":")]
        pair = (parts[0], parts[-1])
    elif isinstance(limit, dict) and set(limit) == {"soft", "hard"} and all(type(v) is int for v in limit.values()):
        pair = (limit["soft"], limit["hard"])
    else:
        check.fail(key, limit, f"must be {allowed}")
    soft, hard = pair
    if soft < -1 or hard < -1:
        check.fail(key, limit, "must be -1 (unlimited) or a non-negative number")
    if soft > MAX_INT64 or hard > MAX_INT64:
        check.fail(key, limit, f"is too large; the largest limit allowed is {MAX_INT64} (2^63 - 1), or -1 for unlimited")
    if hard != -1 and (soft == -1 or soft > hard):
        check.fail(key, limit, "has a soft limit above its hard limit")
    return soft, hard


def _user(check: _Checker, value: Any, key: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if not isinstance(value, str) or not _USER_RE.match(value):
        check.fail(key, value, 'must be "uid", "uid:gid", "name" or "name:group"')
    return value


def _ports(check: _Checker, value: Any, key: str) -> dict[str, list[Any]]:
    check.type(value, dict, key, 'an object mapping container ports to host ports, e.g. {"8888": 8888}')
    ports: dict[str, list[Any]] = {}
    for container_port, host in value.items():
        entry_key = f"{key}.{container_port}"
        match = _PORT_KEY_RE.match(str(container_port))
        if not match or not 1 <= int(match.group(1)) <= 65535:
            check.fail(entry_key, container_port, 'is not a container port; use "8888" or "8888/udp"')
        normalised = f"{int(match.group(1))}/{match.group(2) or 'tcp'}"
        ports[normalised] = _host_binding(check, host, entry_key)
    return ports


def _host_binding(check: _Checker, host: Any, key: str) -> list[Any]:
    """[host_ip, host_port]: loopback unless an address is given, so nothing is exposed by surprise."""
    allowed = 'a host port (1-65535), null for any free port, or "ADDRESS:PORT"'
    if host is None:
        return ["127.0.0.1", None]
    if isinstance(host, int) and not isinstance(host, bool):
        ip, port = "127.0.0.1", host
    elif isinstance(host, str) and re.fullmatch(r"(?:(\[?[0-9A-Fa-f:.]+\]?):)?(\d{1,5})", host):
        address, _, port_text = host.rpartition(":")
        ip, port = (address.strip("[]") or "127.0.0.1"), int(port_text)
    else:
        check.fail(key, host, f"must be {allowed}")
    if not 1 <= port <= 65535:
        check.fail(key, host, f"must be {allowed}")
    return [ip, port]


def _bool(check: _Checker, value: Any, key: str) -> bool:
    check.type(value, bool, key, "true or false")
    return value


def _network(check: _Checker, value: Any, key: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]*", value):
        check.fail(key, value, 'must be a Docker network name such as "host", "bridge" or "none"')
    return value


def _ipc(check: _Checker, value: Any, key: str) -> str:
    if value not in IPC_MODES and not (isinstance(value, str) and value.startswith("container:")):
        check.fail(key, value, f"must be one of {', '.join(IPC_MODES)} or container:NAME")
    return value


def _str_list(check: _Checker, value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        check.fail(key, value, "must be a list of strings")
    return value


def _cpus(check: _Checker, value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.01 <= value <= MAX_CPUS:
        check.fail(key, value, f"must be a number of CPUs from 0.01 to {MAX_CPUS}, e.g. 4 or 1.5")
    return float(value)


_OPTION_CHECKS = {
    "shm_size": _size,
    "ulimits": _ulimits,
    "user": _user,
    "ports": _ports,
    "privileged": _bool,
    "network": _network,
    "tty": _bool,
    "ipc": _ipc,
    "cap_add": _str_list,
    "cap_drop": _str_list,
    "devices": _str_list,
    "security_opt": _str_list,
    "mem_limit": _size,
    "cpus": _cpus,
}


_NO_VALUE = object()


class _Checker:
    """Raises InvalidLaunchConfig with the file, key, offending value and the rule."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, value: Any, reason: str) -> NoReturn:
        shown = "" if value is _NO_VALUE else f" {_show(value)}"
        raise InvalidLaunchConfig(f"{self.source}: {key}:{shown} {reason}", field=key, source=self.source)

    def type(self, value: Any, kind: type, key: str, described: str) -> None:
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise InvalidLaunchConfig(
                f"{self.source}: {key}: expected {described}, got {_json_type(value)}{'' if value is None else ' ' + _show(value)}",
                field=key,
                source=self.source,
            )

    def keys(self, value: dict[str, Any], allowed: tuple[str, ...], key: str) -> None:
        for name in value:
            if name not in allowed:
                where = f"{key}.{name}" if not key.startswith("(") else name
                raise InvalidLaunchConfig(
                    f"{self.source}: {where}: unknown key {name!r}; valid keys here: {', '.join(allowed)}",
                    field=where,
                    source=self.source,
                )

    def required_str(self, entry: dict[str, Any], name: str, key: str) -> str:
        if name not in entry:
            self.fail(f"{key}.{name}", _NO_VALUE, "is missing")
        value = entry[name]
        if not isinstance(value, str) or not value:
            self.fail(f"{key}.{name}", value, "must be a non-empty string")
        return value


def _show(value: Any) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
