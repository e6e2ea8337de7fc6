"""What every phase of the runner shares: the job core's stores, the backend, the GPU line, the worker pools, the active jobs.

JobRunner (job_runner.py) builds one RunnerParts and hands it to each phase; the phases hold no
state of their own beyond it, so any of them may be read, and replaced, alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tao_server.access.mount_pins import MountPins
from tao_server.backends import Backend
from tao_server.images.puller import ImagePuller
from tao_server.jobs.events import EventLog
from tao_server.jobs.gpus.scheduler import GpuScheduler
from tao_server.jobs.log_files import LogStore
from tao_server.jobs.progress.tracker import Progress
from tao_server.jobs.runner.active import ActiveJobs
from tao_server.jobs.runner.backend_health import BackendHealth
from tao_server.jobs.runner.deadlines import Deadlines
from tao_server.jobs.runner.observer import JobObserver
from tao_server.jobs.runner.unrecorded import UnrecordedEnds
from tao_server.jobs.runner.worker_pool import WorkerPool
from tao_server.jobs.store import JobStore


@dataclass
class RunnerParts:
    store: JobStore
    backend: Backend
    logs: LogStore
    events: EventLog
    puller: ImagePuller | None  # None: the backend keeps no images, it fetches them itself when a job starts
    gpus: GpuScheduler
    pins: MountPins
    observer: JobObserver  # told of each recorded start and end (notifications)
    progress: Progress  # follows a run's status file from just before it starts to its end
    stop_timeout: float
    health: BackendHealth
    ends: UnrecordedEnds
    active: ActiveJobs
    deadlines: Deadlines  # the time limits the daemon keeps (deadlines.py)
    workers: WorkerPool  # jobs without GPUs, at most max_running_jobs at once
    gpu_workers: WorkerPool  # jobs holding GPUs: each holds at least one device, so this pool never makes one wait
    control: WorkerPool  # stops and small follow-ups, apart from the workers: a cancel is never stuck behind queued jobs
    image_checks: WorkerPool  # images looked for while GPU jobs wait in line
    pulls_ahead: bool  # images are pulled while GPU jobs wait in line, never while they hold devices (but in a fifo line)
    retry_backoff: float = 5.0  # seconds before a failed job with retries left runs again; doubled at each attempt
    closing: bool = False  # shutting down: nothing new starts; the next daemon starts the queued jobs
    end_listeners: list[Callable[[str], None]] = field(default_factory=list)
