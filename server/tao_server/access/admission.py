"""What a job of a user who is not an admin may ask for, and the confinement it always gets.

Admins (root, the daemon's user, admin tokens) are not checked: they could run anything through
the engine anyway. Everyone else's job passes the policy (policy.py), mounts only what its user
could read (readable.py) and nothing that contains a protected path (paths.py), stays within
its GPU cap, and then runs as that user with no way to gain privileges inside the container.
"""

from __future__ import annotations

from typing import Any

from tao_common.time_limits import shown
from tao_server.access.caller import Caller
from tao_server.access.paths import ProtectedPaths
from tao_server.access.policy import Policy, Rules, own_user
from tao_server.access.readable import unreadable
from tao_server.errors import PolicyRefusal


class Admission:
    def __init__(self, policy: Policy, protected: ProtectedPaths) -> None:
        self.policy = policy
        self.protected = protected

    def admit(
        self,
        caller: Caller,
        mounts: list[dict[str, Any]],
        options: dict[str, Any],
        envs: dict[str, str],
        gpus: int,
        nodes: int = 1,
        time_limit: int | None = None,
    ) -> int | None:
        """Refuse what the policy does not grant `caller`, confine `options` in place; the caller's GPU cap."""
        rules = self._check(caller, mounts, options, envs, gpus)
        self._check_placement(caller, rules, nodes, time_limit)
        _confine(caller, options, rules)
        return rules.max_gpus

    def shares(self, caller: Caller) -> float:
        """The caller's weight in fair share (admins' too: the policy orders the GPU line for everyone)."""
        return self.policy.rules_for(caller).shares

    def _check_placement(self, caller: Caller, rules: Rules, nodes: int, time_limit: int | None) -> None:
        if rules.max_nodes is not None and nodes > rules.max_nodes:
            raise PolicyRefusal(
                f"nodes: this job asks for {nodes} nodes, but {self.policy.name} lets {caller.describe()} use at most {rules.max_nodes}",
                field="nodes",
            )
        if rules.max_time is not None and (time_limit is None or time_limit > rules.max_time):
            asked = f"a time limit of {shown(time_limit)}" if time_limit is not None else "no time limit"
            raise PolicyRefusal(
                f"time: this job asks for {asked}, but {self.policy.name} lets {caller.describe()} run at most "
                f"{shown(rules.max_time)}; give --time {shown(rules.max_time)} or less",
                field="time",
            )

    def _check(self, caller: Caller, mounts: list[dict[str, Any]], options: dict[str, Any], envs: dict[str, str], gpus: int) -> Rules:
        rules = self.policy.check(caller, mounts, options, envs)
        for index, mount in enumerate(mounts):
            field = f"Mounts[{index}].source"
            if (inner := self.protected.contained(mount["source"])) is not None:
                raise PolicyRefusal(f"{field}: {mount['source']!r} contains {inner}, which jobs may not mount", field=field)
            if unreadable(mount["source"], caller):
                raise PolicyRefusal(
                    f"{field}: {mount['source']!r} is not readable by {caller.describe()}; a job may mount only what its user could read",
                    field=field,
                )
        if rules.max_gpus is not None and gpus > rules.max_gpus:
            raise PolicyRefusal(
                f"gpus: this job asks for {gpus} GPUs, but {self.policy.name} lets {caller.describe()} hold at most {rules.max_gpus} at once",
                field="gpus",
            )
        return rules


def run_as_caller(caller: Caller, options: dict[str, Any]) -> None:
    """An admin's job without `DockerOptions.user` runs as the admin, so files it writes are theirs, not root's."""
    if caller.uid is not None and "user" not in options:
        options["user"] = f"{caller.uid}:{caller.gid}"


def _confine(caller: Caller, options: dict[str, Any], rules: Rules) -> None:
    """Run a user's job as that user, with no way to gain privileges inside the container.

    The job gets the caller's uid, gid and groups, as numbers (a bare uid or name gets the
    caller's gid: alone, a uid would run with gid 0, root's group).
    no-new-privileges makes setuid programs in the image harmless, and without the `user` grant
    the job keeps no capabilities: it is an ordinary process of its user, only in a container.
    """
    if "user" not in options or "user" not in rules.allow:
        # Without the grant the option names the caller (policy.py), maybe by the host's names:
        # the engine gets the numbers, which the image's own passwd and group files cannot change.
        own = own_user(caller, str(options["user"])) if "user" in options else None
        gid = own[1] if own is not None and own[1] is not None else caller.gid
        options["user"] = f"{caller.uid}:{gid}"
        if extra := [str(g) for g in caller.groups if g != gid]:
            options["group_add"] = extra
    security = options.setdefault("security_opt", [])
    if not any(opt.startswith("no-new-privileges") for opt in security):
        security.append("no-new-privileges:true")
    if "user" not in rules.allow:
        options["cap_drop"] = ["ALL"]
