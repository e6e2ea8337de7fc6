"""Idle GPUs noticed: a held device under a utilisation threshold for long enough gives its job a condition.

Pure: each sampling pass hands `observe` who holds each device and how busy it was, with the time;
the condition is worded when asked, from the time then ("GPU 1 idle for 12 min"). A device counts
as idle from its first sample under the threshold since it was last busy or changed hands, so a
job that has just got its devices is idle at most since then. The changes worth a line in the
job's timeline (idle long enough, busy again after that) come back from `observe`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IdleChange:
    """A device of `job_id` became idle long enough to say so (`idle`), or busy again after it had."""

    job_id: str
    device: str
    idle: bool
    seconds: float  # how long it has been (or was) idle

    def message(self, threshold: float) -> str:
        if self.idle:
            return f"GPU {self.device} idle for {duration(self.seconds)} (under {threshold:g}% utilisation)"
        return f"GPU {self.device} busy again after {duration(self.seconds)} idle"


@dataclass
class _Watch:
    job_id: str
    idle_since: float | None = None
    told: bool = False  # its idleness was long enough to be told


class IdleTracker:
    def __init__(self, threshold: float, after: float) -> None:
        """`threshold`: utilisation (percent) under which a device is idle; `after`: seconds idle before it is said (0: never)."""
        self.threshold = threshold
        self.after = after
        self._watches: dict[str, _Watch] = {}  # device -> the job holding it, and since when it is idle

    def observe(self, seen: dict[str, tuple[str | None, float | None]], now: float) -> list[IdleChange]:
        """One pass: each device's holder and utilisation (None: unreadable this time, which changes nothing)."""
        changes = []
        for device, (holder, utilization) in seen.items():
            watch = self._watches.get(device)
            if holder is None:
                self._watches.pop(device, None)
                continue
            if watch is None or watch.job_id != holder:
                watch = self._watches[device] = _Watch(holder)
            if utilization is None:
                continue
            if utilization < self.threshold:
                watch.idle_since = now if watch.idle_since is None else watch.idle_since
                if self._long_enough(watch, now) and not watch.told:
                    watch.told = True
                    changes.append(IdleChange(holder, device, True, now - watch.idle_since))
            else:
                if watch.told and watch.idle_since is not None:
                    changes.append(IdleChange(holder, device, False, now - watch.idle_since))
                watch.idle_since, watch.told = None, False
        return changes

    def condition(self, job_id: str, now: float) -> str | None:
        """ "GPU 1 idle for 12 min" ("GPUs 1, 3 ...": the shortest of them) for a job whose devices have idled long enough."""
        idle = {
            device: now - watch.idle_since
            for device, watch in self._watches.items()
            if watch.job_id == job_id and watch.idle_since is not None and self._long_enough(watch, now)
        }
        if not idle:
            return None
        devices = sorted(idle, key=_device_order)
        label = f"GPU {devices[0]}" if len(devices) == 1 else f"GPUs {', '.join(devices)}"
        return f"{label} idle for {duration(min(idle.values()))}"

    def idle_seconds(self, device: str, now: float) -> float | None:
        """How long a held device has been idle; None when it is busy, free or unread."""
        watch = self._watches.get(device)
        return now - watch.idle_since if watch is not None and watch.idle_since is not None else None

    def _long_enough(self, watch: _Watch, now: float) -> bool:
        return self.after > 0 and watch.idle_since is not None and now - watch.idle_since >= self.after


def duration(seconds: float) -> str:
    """ "40 s", "12 min", "2 h 5 min": a condition's words, whole seconds under a minute, whole minutes past it."""
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def _device_order(device: str) -> tuple[int, str]:
    return (int(device), "") if device.isdigit() else (1 << 30, device)
