"""The daemon's stop, bounded by its stop timeout (tao_server.runtime.stopping)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from tao_server.runtime import stopping


@pytest.mark.parametrize(("timeout", "deadline", "grace"), [(30, 30, 3), (10, 10, 3), (5, 5, 2), (0, 1, 0)])
def test_open_connections_get_a_share_of_the_stop_timeout(timeout: float, deadline: float, grace: int) -> None:
    assert stopping.deadline(timeout) == deadline
    assert stopping.grace(timeout) == grace


def test_a_process_held_open_by_a_stuck_thread_is_ended_at_its_deadline_saying_so(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "last-words"
    script = textwrap.dedent(
        f"""
        import logging, threading
        from pathlib import Path
        from tao_server.runtime import stopping
        logging.basicConfig(level="INFO", format="%(message)s")
        threading.Thread(target=threading.Event().wait, name="stuck-engine-call").start()  # never ends, not a daemon
        stopping.start_watchdog(1.0, last_words=lambda: Path({str(marker)!r}).touch())
        """
    )
    started = time.monotonic()
    ended = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert ended.returncode == stopping.CUT_OFF_STATUS
    assert "still stopping 0.9 s after the signal (the stop timeout is 1.0 s); ending now" in ended.stderr
    assert "Threads still running: stuck-engine-call" in ended.stderr
    assert marker.exists()
    assert elapsed < 60  # without the watchdog the process never ends: the safety timeout above would fire
