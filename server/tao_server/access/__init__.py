"""Who is calling and what they may do.

caller.py (Caller: uid, groups, admin), peer.py (the kernel's SO_PEERCRED on the Unix socket),
tcp_peer.py (the owner of a loopback TCP connection's far end, from /proc/net/tcp), tokens.py (bearer tokens for TCP), policy.py (the policy file and its grants), admission.py (the
checks a user's job passes at submission, and its confinement), paths.py (host paths no job may
mount), readable.py (could the caller read this path?), mount_pins.py (mount sources pinned to
what was checked). Modules here import `tao_server.errors`, `tao_server.models`, each other, and
`tao_server.notify.addresses` (the policy's `notify_to` patterns).
"""

from tao_server.access.caller import DAEMON, Caller, caller_from_peer, owner_of

__all__ = ["DAEMON", "Caller", "caller_from_peer", "owner_of"]
