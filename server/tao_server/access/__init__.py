"""Who is calling, what they may do, and what a request may hold.

    caller.py        Caller: uid, groups, admin; who may see and stop which jobs
    peer.py          the kernel's SO_PEERCRED on the Unix socket
    tcp_peer.py      the owner of a loopback TCP connection's far end, from /proc/net/tcp
    tokens.py        bearer tokens for TCP callers
    policy.py        the policy file and its grants
    admission.py     the checks a user's job passes at submission, and its confinement
    input_checks.py  what any request may hold: text the engine can carry, within the limits
    paths.py         host paths no job may mount; loopback addresses
    readable.py      could the caller read this host path as themselves?
    mount_pins.py    mount sources pinned to what was checked
    beneath.py       files a job wrote, opened beneath its mount and never through a link

Modules here import `tao_server.errors`, `tao_server.models`, each other, tao_common (time
limits) and `tao_server.notify.addresses` (the policy's `notify_to` patterns).
"""

from tao_server.access.caller import DAEMON, Caller, caller_from_peer, owner_of

__all__ = ["DAEMON", "Caller", "caller_from_peer", "owner_of"]
