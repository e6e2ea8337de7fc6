"""What a job may ask for on a shared box: the policy file, and the checks it drives.

Admins (root and the daemon's own user) are not bound by it: they can already run anything
through Docker. Everyone else gets, without a policy file or a grant in it:
- containers that run as themselves (their uid and one of their groups, by number or by the
  name the daemon's host gives them);
- no `privileged`, networks but the default ones, the host's or other containers' IPC
  namespace, added capabilities, devices (nor NVIDIA_* variables that pick them), security
  options, or ulimits that raise scheduling priority or the process limit;
- host ports on loopback only, 1024 and above;
- mounts of paths they could read themselves, anywhere not protected (paths.ProtectedPaths).

The file (TOML) grants options and narrows mounts per user and per group:

    [default]
    mount_roots = ["/data", "/home"]   # mount sources must lie under one of these
    max_gpus = 2                       # GPUs one user's jobs may hold at once
    max_nodes = 2                      # nodes one job may ask for (Slurm backend)
    max_time = "24:00:00"              # the longest time limit a job may give; then it must give one
    shares = 1                         # each user's weight in fair share (the GPU line's order)
    notify_to = ["hooks.corp.example", "127.0.0.1:9000"]   # opens these to notifications (notify/)

    [user.alice]
    allow = ["privileged", "devices"]
    max_gpus = 4

    [group.ml]
    mount_roots = ["/datasets"]
    allow = ["network"]
    shares = 2                         # each member of ml weighs twice a user with 1

    [fair_share]
    half_life = "1-00:00:00"           # GPU-seconds used count half after this long (default a day)

A caller's rules are the union of `[default]`, their `[user.NAME]` and each `[group.NAME]` they
belong to (`notify_to` too, which binds admins as well: a notification is the daemon's own request); each cap (`max_gpus`, `max_nodes`, `max_time`) and `shares` is the user's own if set,
else the largest of their groups', else the default's (shares: 1).

Fair share (jobs/gpus/fair_share.py, jobs/gpus/gpu_line.py) orders the GPU line by each user's GPU-seconds
of late, decayed with `half_life`, divided by their shares: the lowest goes first. Shares belong to
users; a group's shares are what each of its members gets, not a pool they split.
"""

from __future__ import annotations

import grp
import os
import pwd
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tao_common import time_limits
from tao_server.access.caller import Caller, user_name_of
from tao_server.access.paths import is_loopback, within
from tao_server.errors import PolicyError, PolicyRefusal
from tao_server.notify.addresses import Destination, parse_destination

# Each grant is named after the DockerOptions key it unlocks.
GRANTS = {
    "user": "run the container as another user than the caller",
    "privileged": "privileged containers",
    "network": 'networks other than the default ones ("bridge", "none"), such as "host" or "container:NAME"',
    "ipc": 'the host\'s or another container\'s IPC namespace ("host", "container:NAME")',
    "cap_add": "added Linux capabilities",
    "devices": "host devices, and NVIDIA_* variables that select devices",
    "security_opt": "security options other than no-new-privileges",
    "ports": "host ports below 1024 or bound to an address other than loopback",
    "ulimits": "ulimits that raise scheduling priority (rtprio, nice) or lift the per-user process limit (nproc)",
}
_RULE_KEYS = ("allow", "mount_roots", "max_gpus", "max_nodes", "max_time", "shares", "notify_to")
_FAIR_SHARE_KEYS = ("half_life",)
_SAFE_SECURITY_OPTS = ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true")
_DEFAULT_NETWORKS = ("bridge", "none", "default")
# NVIDIA_* variables the container runtime reads that only check compatibility; the others pick devices.
_SAFE_NVIDIA_VARIABLES = ("NVIDIA_DRIVER_CAPABILITIES", "NVIDIA_DISABLE_REQUIRE")
_GATED_ULIMITS = ("rtprio", "nice", "nproc")  # nproc counts the uid's processes across the whole host


@dataclass(frozen=True)
class Rules:
    """One caller's effective rules."""

    allow: frozenset[str] = frozenset()
    mount_roots: tuple[str, ...] = ()  # empty: any source that is not protected
    max_gpus: int | None = None
    max_nodes: int | None = None
    max_time: int | None = None  # seconds; a job must then give a time limit within it
    shares: float = 1.0  # weight in fair share: usage is divided by it
    # Hosts and addresses notifications may reach although they are loopback, private or the daemon's own.
    notify_to: tuple[Destination, ...] = ()
    sources: tuple[str, ...] = ("no policy file",)  # the sections they came from, for messages


# Caps and shares: the user's own when set, else the largest of their groups', else the default's.
_CAPS = ("max_gpus", "max_nodes", "max_time")


@dataclass
class _Rule:
    allow: frozenset[str] = frozenset()
    mount_roots: tuple[str, ...] = ()
    max_gpus: int | None = None
    max_nodes: int | None = None
    max_time: int | None = None
    shares: float | None = None
    notify_to: tuple[Destination, ...] = ()


@dataclass
class Policy:
    path: Path | None = None
    default: _Rule = field(default_factory=_Rule)
    users: dict[str, _Rule] = field(default_factory=dict)
    groups: dict[str, _Rule] = field(default_factory=dict)
    half_life: int | None = None  # seconds, from [fair_share]; None: fair_share.DEFAULT_HALF_LIFE

    @property
    def name(self) -> str:
        return str(self.path) if self.path else "the default policy (no --policy file)"

    def rules_for(self, caller: Caller) -> Rules:
        if self.path is None:
            return Rules()
        user_name = caller.name or user_name_of(caller.uid)
        group_names = [name for gid in caller.all_groups if (name := _group_name(gid)) is not None]
        sections = [("default", self.default)]
        if user_name in self.users:
            sections.append((f"user.{user_name}", self.users[user_name]))
        sections += [(f"group.{name}", self.groups[name]) for name in group_names if name in self.groups]
        user_rule = self.users.get(user_name) if user_name is not None else None
        group_rules = [self.groups[name] for name in group_names if name in self.groups]
        return Rules(
            allow=frozenset().union(*(rule.allow for _, rule in sections)),
            mount_roots=tuple(dict.fromkeys(root for _, rule in sections for root in rule.mount_roots)),
            notify_to=tuple(dict.fromkeys(pattern for _, rule in sections for pattern in rule.notify_to)),
            sources=tuple(f"[{name}]" for name, _ in sections),
            shares=self._cap("shares", user_rule, group_rules) or 1.0,
            **{cap: self._cap(cap, user_rule, group_rules) for cap in _CAPS},
        )

    def _cap(self, cap: str, user_rule: _Rule | None, group_rules: list[_Rule]) -> Any:
        if user_rule is not None and (own := getattr(user_rule, cap)) is not None:
            return own
        groups = [value for rule in group_rules if (value := getattr(rule, cap)) is not None]
        return max(groups) if groups else getattr(self.default, cap)

    def check(
        self, caller: Caller, mounts: list[dict[str, Any]], docker_options: dict[str, Any], envs: dict[str, str] | None = None
    ) -> Rules:
        """Refuse what the caller's rules do not grant; the rules, for the GPU cap."""
        rules = self.rules_for(caller)
        for name in envs or {}:
            if name.startswith("NVIDIA_") and not name.startswith("NVIDIA_REQUIRE_") and name not in _SAFE_NVIDIA_VARIABLES:
                if "devices" not in rules.allow:
                    raise PolicyRefusal(
                        f"Envs: {name} is refused: the NVIDIA container runtime reads it to give devices, which need the "
                        f"'devices' grant; {self.name} does not give it {caller.describe()}",
                        field="Envs",
                    )
        for option, value, refused in _asked_grants(caller, docker_options):
            if refused and option not in rules.allow:
                raise PolicyRefusal(
                    f"DockerOptions.{option}: {_shown(value)} is refused: {GRANTS[option]} need the {option!r} grant, "
                    f"which {self.name} does not give {caller.describe()}; ask an admin to add it",
                    field=f"DockerOptions.{option}",
                )
        if rules.mount_roots:
            for index, mount in enumerate(mounts):
                if not any(within(mount["source"], root) for root in rules.mount_roots):
                    raise PolicyRefusal(
                        f"Mounts[{index}].source: {mount['source']!r} is outside the mount roots {self.name} allows "
                        f"{caller.describe()}: {', '.join(rules.mount_roots)}",
                        field=f"Mounts[{index}].source",
                    )
        return rules


def load(path: Path | None) -> Policy:
    """The policy in `path`, checked whole; the default policy when there is none."""
    if path is None:
        return Policy()
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such policy file") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot be read: {exc}") from None
    policy = Policy(path=path)
    for key, value in raw.items():
        if key == "default":
            policy.default = _rule(path, "default", value)
        elif key in ("user", "group"):
            if not isinstance(value, dict):
                raise PolicyError(f"{path}: [{key}] must hold tables such as [{key}.NAME]")
            target = policy.users if key == "user" else policy.groups
            for name, rule in value.items():
                target[name] = _rule(path, f"{key}.{name}", rule)
        elif key == "fair_share":
            policy.half_life = _half_life(path, value)
        else:
            raise PolicyError(f"{path}: unknown key {key!r}; valid keys: default, user.NAME, group.NAME, fair_share")
    return policy


def _half_life(path: Path, raw: Any) -> int | None:
    """[fair_share]: `half_life` as Slurm writes a time ("1-00:00:00", "30"); seconds."""
    if not isinstance(raw, dict) or any(key not in _FAIR_SHARE_KEYS for key in raw):
        raise PolicyError(f"{path}: [fair_share] must be a table with keys {', '.join(_FAIR_SHARE_KEYS)}")
    value = raw.get("half_life")
    if value is None:
        return None
    try:
        return time_limits.parse(value) if isinstance(value, str) else time_limits.parse("")
    except time_limits.NotATimeLimit:
        raise PolicyError(
            f"{path}: [fair_share] half_life = {value!r}: must be a time above zero as Slurm writes it ({time_limits.FORMS})"
        ) from None


def _rule(path: Path, section: str, raw: Any) -> _Rule:
    if not isinstance(raw, dict):
        raise PolicyError(f"{path}: [{section}] must be a table with keys {', '.join(_RULE_KEYS)}")
    for key in raw:
        if key not in _RULE_KEYS:
            raise PolicyError(f"{path}: [{section}] {key}: unknown key; valid keys: {', '.join(_RULE_KEYS)}")
    allow = raw.get("allow", [])
    if not isinstance(allow, list) or any(grant not in GRANTS for grant in allow):
        raise PolicyError(f"{path}: [{section}] allow = {allow!r}: must be a list of grants from: {', '.join(GRANTS)}")
    roots = raw.get("mount_roots", [])
    if not isinstance(roots, list) or not all(isinstance(root, str) and os.path.isabs(root) for root in roots):
        raise PolicyError(f"{path}: [{section}] mount_roots = {roots!r}: must be a list of absolute paths")
    cap = raw.get("max_gpus")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
        raise PolicyError(f"{path}: [{section}] max_gpus = {cap!r}: must be a number of GPUs, 0 or more")
    nodes = raw.get("max_nodes")
    if nodes is not None and (isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1):
        raise PolicyError(f"{path}: [{section}] max_nodes = {nodes!r}: must be a number of nodes, 1 or more")
    shares = raw.get("shares")
    if shares is not None and (isinstance(shares, bool) or not isinstance(shares, int | float) or not shares > 0):
        raise PolicyError(f"{path}: [{section}] shares = {shares!r}: must be a number above 0 (a user's weight in fair share)")
    # Roots are compared with resolved mount sources, so resolve them too.
    real_roots = tuple(os.path.realpath(root) for root in roots)
    return _Rule(
        frozenset(allow),
        real_roots,
        cap,
        nodes,
        _max_time(path, section, raw),
        float(shares) if shares is not None else None,
        _notify_to(path, section, raw),
    )


def _notify_to(path: Path, section: str, raw: dict[str, Any]) -> tuple[Destination, ...]:
    """`notify_to`: host or host:port patterns, addresses and networks notifications may reach though they are not public."""
    patterns = raw.get("notify_to", [])
    if not isinstance(patterns, list) or not all(isinstance(pattern, str) for pattern in patterns):
        raise PolicyError(f'{path}: [{section}] notify_to = {patterns!r}: must be a list of strings such as "hooks.corp.example:443"')
    parsed = []
    for pattern in patterns:
        try:
            parsed.append(parse_destination(pattern))
        except ValueError as exc:
            raise PolicyError(
                f"{path}: [{section}] notify_to: {pattern!r}: {exc}; give a host name (* matches any part), an address or "
                'a network, each with :PORT or not ("hooks.corp.example", "*.corp.example:8443", "127.0.0.1:9000", '
                '"10.0.0.0/8", "[fd00::1]:443")'
            ) from None
    return tuple(parsed)


def _max_time(path: Path, section: str, raw: dict[str, Any]) -> int | None:
    """`max_time` as Slurm writes a limit ("24:00:00", "2-0"); seconds."""
    value = raw.get("max_time")
    if value is None:
        return None
    try:
        return time_limits.parse(value) if isinstance(value, str) else time_limits.parse("")
    except time_limits.NotATimeLimit:
        raise PolicyError(
            f"{path}: [{section}] max_time = {value!r}: must be a time limit as Slurm writes it ({time_limits.FORMS})"
        ) from None


def _asked_grants(caller: Caller, options: dict[str, Any]) -> list[tuple[str, Any, bool]]:
    """(option, value, needs a grant) for each option that can reach beyond the caller's own rights."""
    network, ipc = options.get("network"), options.get("ipc")
    security = [opt for opt in options.get("security_opt") or [] if opt not in _SAFE_SECURITY_OPTS]
    public_ports = [
        f"{ip}:{port}" for ip, port in options.get("ports", {}).values() if not is_loopback(ip) or (port is not None and port < 1024)
    ]
    gated_limits = {limit["name"]: limit["hard"] for limit in options.get("ulimits", []) if limit["name"] in _GATED_ULIMITS}
    return [
        ("user", options.get("user"), "user" in options and own_user(caller, str(options["user"])) is None),
        ("privileged", True, bool(options.get("privileged"))),
        ("network", network, isinstance(network, str) and network not in _DEFAULT_NETWORKS),
        ("ipc", ipc, isinstance(ipc, str) and (ipc == "host" or ipc.startswith("container:"))),
        ("cap_add", options.get("cap_add"), bool(options.get("cap_add"))),
        ("devices", options.get("devices"), bool(options.get("devices"))),
        ("security_opt", security, bool(security)),
        ("ports", public_ports[0] if public_ports else None, bool(public_ports)),
        ("ulimits", gated_limits, "nproc" in gated_limits or any(gated_limits.get(name, 0) != 0 for name in ("rtprio", "nice"))),
    ]


def own_user(caller: Caller, user: str) -> tuple[int, int | None] | None:
    """(uid, gid or None) when `user` ("uid", "uid:gid", "name", "name:group") is the caller and one of their groups.

    Names are looked up on the daemon's host (pwd, grp), whose accounts the caller's uid belongs
    to; a name the host does not know is not the caller's. Inside an image the same name may be
    anyone, so a job allowed this way runs with the numbers (admission.py), never the name.
    """
    name, _, group = user.partition(":")
    uid = _host_id(name, lambda text: pwd.getpwnam(text).pw_uid)
    if uid is None or uid != caller.uid:
        return None
    if not group:
        return uid, None
    gid = _host_id(group, lambda text: grp.getgrnam(text).gr_gid)
    return (uid, gid) if gid is not None and gid in caller.all_groups else None


def _host_id(text: str, look_up: Callable[[str], int]) -> int | None:
    """A number as it is; a name as the host's account database knows it, None when it does not."""
    if text.isdecimal():
        return int(text)
    try:
        return look_up(text)
    except KeyError:
        return None


def _shown(value: Any) -> str:
    import json

    return json.dumps(value)


def _group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None
