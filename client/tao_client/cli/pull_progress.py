"""Image pull progress on stderr: a bar per layer on a terminal (rich), plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from tao_client.client import Client

DONE_STATUSES = ("Pull complete", "Already exists", "pulled")
POLL = 0.25  # seconds between looks while a pull shows progress
QUIET_POLL = 5.0  # the longest between looks while nothing happens (a job pending for hours in a cluster's queue)


def view() -> PlainView | RichView:
    if sys.stderr.isatty():
        try:
            return RichView()
        except ImportError:
            pass
    return PlainView()


class PlainView:
    """One line per image and per finished layer, and a summary every few seconds: fit for logs and CI."""

    def __init__(self, interval: float = 3.0) -> None:
        self._interval = interval
        self._images: set[str] = set()
        self._layers: dict[str, tuple[int, int]] = {}
        self._done: set[str] = set()
        self._last_summary = time.monotonic()

    def update(self, event: dict[str, Any]) -> None:
        image, layer, status = event.get("image", ""), event.get("layer", ""), event.get("status", "")
        if image not in self._images:
            self._images.add(image)
            print(f"tao: pulling {image}", file=sys.stderr)
        if "total" in event:
            self._layers[layer] = (event.get("current", 0), event["total"])
        if layer and status in DONE_STATUSES and layer not in self._done:
            self._done.add(layer)
            print(f"tao:   {layer}: {status}", file=sys.stderr)
        elif not layer and status:
            print(f"tao:   {status}", file=sys.stderr)
        if time.monotonic() - self._last_summary >= self._interval and self._layers:
            self._last_summary = time.monotonic()
            current = sum(c for c, _ in self._layers.values())
            total = sum(t for _, t in self._layers.values())
            print(f"tao:   {len(self._done)}/{len(self._layers)} layers done, {current / 1e6:.0f}/{total / 1e6:.0f} MB", file=sys.stderr)

    def close(self) -> None:
        sys.stderr.flush()


class RichView:
    """A progress bar per layer, as `docker pull` draws them."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=Console(stderr=True), transient=False
        )
        self._tasks: dict[str, Any] = {}
        self._progress.start()

    def update(self, event: dict[str, Any]) -> None:
        image, layer, status = event.get("image", ""), event.get("layer", ""), event.get("status", "")
        key = layer or image
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(f"{layer or image}", total=None)
        task = self._tasks[key]
        if "total" in event:
            self._progress.update(task, completed=event.get("current", 0), total=event["total"], description=f"{layer} {status}")
        elif status in DONE_STATUSES:
            total = self._progress.tasks[task].total or 1
            self._progress.update(task, completed=total, total=total, description=f"{key} {status}")
        else:
            self._progress.update(task, description=f"{key} {status}")

    def close(self) -> None:
        self._progress.stop()


class PullWatcher(threading.Thread):
    """While a job waits for its image, show the pull on stderr. Quiet for jobs that start at once."""

    def __init__(self, connect: Callable[[], Client], job_id: str, delay: float = 0.3) -> None:
        super().__init__(name="pull-progress", daemon=True)
        self._connect = connect
        self._job_id = job_id
        self._delay = delay
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join(timeout=2)

    def run(self) -> None:
        from tao_client._errors import TaoClientError

        if self._stopped.wait(self._delay):
            return
        shown: PlainView | RichView | None = None
        after = 0
        pause = POLL
        try:
            with self._connect() as client:
                while True:
                    page = client.events(self._job_id, after)
                    for event in page["events"]:
                        if event["type"] != "pull":  # a job's other events (its GPUs, its time limit) are no pull's
                            continue
                        shown = shown or view()
                        shown.update(event["data"])
                    after = page["next_after"]
                    # Back off while nothing comes, so that clients waiting in a long queue cost the daemon little.
                    pause = POLL if page["events"] else min(pause * 2, QUIET_POLL)
                    if client.job(self._job_id).status not in ("queued", "pulling") or self._stopped.wait(pause):
                        return
        except TaoClientError:
            return  # the output stream reports a lost daemon; progress is best effort
        finally:
            if shown is not None:
                shown.close()
