"""A trial's copy of the spec template: ${params.NAME} filled in, written to ${trial.dir}/spec.

Both paths are the container's, found on the host through the sweep's launcher config, as the
trial's job will see them. The daemon (often root) reads and writes them as the sweep's owner, in
a short child process with the owner's uid and gid: it can read only what the owner may read, and
what it writes is the owner's, in a dir the owner may write; nothing the owner swaps in (a link
to another user's file) lends them the daemon's rights.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
import sys
from typing import Any

from tao_server.errors import InvalidWorkflowFile
from tao_server.jobs import launch_options
from tao_server.jobs.path_args import on_host
from tao_server.sweeps import trial_args
from tao_server.sweeps.sweep_file import SweepSpec
from tao_server.sweeps.sweep_models import Sweep

SPEC_NAME = "spec"
_READ = "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read())"
_WRITE = (
    "import os, sys; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True); "
    "data = sys.stdin.buffer.read(); open(sys.argv[1], 'wb').write(data)"
)
MAX_TEMPLATE_BYTES = 1 << 20


def write_spec_copy(sweep: Sweep, spec: SweepSpec, number: int, params: dict[str, Any]) -> str:
    """Write the trial's spec; the container's path of it. InvalidWorkflowFile when a path is outside every mount or cannot be used."""
    mounts = launch_options.validate(sweep.launch_config, sweep.launch_config_source).mounts
    template = spec.spec_template or ""
    target = posixpath.join(trial_args.trial_dir(spec, number), SPEC_NAME)
    text = _as_owner(sweep, _READ, _host(template, mounts, "spec_template"), None).decode()
    if len(text) > MAX_TEMPLATE_BYTES:
        raise InvalidWorkflowFile(f"spec_template {template}: over {MAX_TEMPLATE_BYTES} bytes", field="spec_template")
    _as_owner(sweep, _WRITE, _host(target, mounts, "trial_dir"), trial_args.render_template(text, spec, number, params).encode())
    return target


def _host(path: str, mounts: list[dict[str, Any]], key: str) -> str:
    found = on_host(path, mounts)
    if found is None:
        raise InvalidWorkflowFile(f"{key}: {path} is outside every mount of the launcher config, so the daemon cannot reach it", field=key)
    return os.path.join(found.source, found.relative) if found.relative else found.source


def _as_owner(sweep: Sweep, code: str, path: str, data: bytes | None) -> bytes:
    """Run `code` on `path` as the sweep's owner (as the daemon itself when it is not root, or the sweep is its own)."""
    as_owner = os.geteuid() == 0 and sweep.owner_uid not in (None, 0)
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", code, path],
            input=data or b"",
            capture_output=True,
            timeout=30,
            check=False,
            user=sweep.owner_uid if as_owner else None,
            group=sweep.owner_gid if as_owner else None,
            extra_groups=[] if as_owner else None,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InvalidWorkflowFile(f"{path}: cannot be used for the trial's spec: {exc}", field="spec_template") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["failed"]
        raise InvalidWorkflowFile(f"{path}: cannot be used for the trial's spec: {reason[0]}", field="spec_template")
    return done.stdout
