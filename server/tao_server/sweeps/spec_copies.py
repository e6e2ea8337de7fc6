"""A trial's copy of the spec template: ${params.NAME} filled in, written to ${trial.dir}/spec.

Both paths are the container's, found on the host through the sweep's launcher config, as the
trial's job will see them. The daemon (often root) reads and writes them as the sweep's owner, in
short child processes with the owner's uid and gid: it can read only what the owner may read, and
what it writes is the owner's, in a dir the owner may write; nothing the owner swaps in (a link
to another user's file) lends them the daemon's rights. The children are the system's `cat`,
`mkdir` and `tee`, each given the path as one argument: the owner may not be able to run the
daemon's own interpreter (a virtual environment under a home they cannot enter).
"""

from __future__ import annotations

import os
import posixpath
import subprocess
from typing import Any

from tao_server.errors import InvalidWorkflowFile
from tao_server.jobs import launch_options
from tao_server.jobs.path_args import on_host
from tao_server.sweeps import trial_args
from tao_server.sweeps.sweep_file import SweepSpec
from tao_server.sweeps.sweep_models import Sweep

SPEC_NAME = "spec"
MAX_TEMPLATE_BYTES = 1 << 20


def write_spec_copy(sweep: Sweep, spec: SweepSpec, number: int, params: dict[str, Any]) -> str:
    """Write the trial's spec; the container's path of it. InvalidWorkflowFile when a path is outside every mount or cannot be used."""
    mounts = launch_options.validate(sweep.launch_config, sweep.launch_config_source).mounts
    template = spec.spec_template or ""
    target = posixpath.join(trial_args.trial_dir(spec, number), SPEC_NAME)
    source = _host(template, mounts, "spec_template")
    text = _as_owner(sweep, ["cat", "--", source], source).decode()
    if len(text) > MAX_TEMPLATE_BYTES:
        raise InvalidWorkflowFile(f"spec_template {template}: over {MAX_TEMPLATE_BYTES} bytes", field="spec_template")
    copy = _host(target, mounts, "trial_dir")
    _as_owner(sweep, ["mkdir", "-p", "--", os.path.dirname(copy)], copy)
    _as_owner(sweep, ["tee", "--", copy], copy, trial_args.render_template(text, spec, number, params).encode())
    return target


def _host(path: str, mounts: list[dict[str, Any]], key: str) -> str:
    found = on_host(path, mounts)
    if found is None:
        raise InvalidWorkflowFile(f"{key}: {path} is outside every mount of the launcher config, so the daemon cannot reach it", field=key)
    return os.path.join(found.source, found.relative) if found.relative else found.source


def _as_owner(sweep: Sweep, argv: list[str], path: str, data: bytes | None = None) -> bytes:
    """Run `argv` on `path` as the sweep's owner (as the daemon itself when it is not root, or the sweep is its own); its output."""
    as_owner = os.geteuid() == 0 and sweep.owner_uid not in (None, 0)
    try:
        done = subprocess.run(
            argv,
            input=data or b"",
            stdout=subprocess.DEVNULL if data is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
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
    return done.stdout or b""
