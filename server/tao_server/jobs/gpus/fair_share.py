"""Fair share between users: the GPU-seconds each used lately, decayed with a half-life, as Slurm counts them.

Usage halves every `half_life` seconds, so last week's training weighs less than this morning's.
A user's place among the others is their usage divided by their shares (the policy file's
`shares`): the lowest goes first. Slurm's classic fair-share factor, 2^(-usage/shares) with both
normalised, orders users the same way. Pure: the time is always given, never read, so a test
decides it and a restarted daemon can charge jobs that ended before it started.
"""

from __future__ import annotations

Account = int | None  # a job's owner uid; None: the daemon itself

DEFAULT_HALF_LIFE = 86400.0  # a day: yesterday's use counts half as much as today's


class Usage:
    """Decayed GPU-seconds per account."""

    def __init__(self, half_life: float = DEFAULT_HALF_LIFE) -> None:
        if half_life <= 0:
            raise ValueError(f"a half-life must be above zero, not {half_life}")
        self.half_life = half_life
        self._used: dict[Account, tuple[float, float]] = {}  # account -> (GPU-seconds, as of when)

    def add(self, account: Account, gpu_seconds: float, at: float) -> None:
        """Charge `gpu_seconds` used by `account` at time `at` (seconds since the epoch)."""
        if gpu_seconds <= 0:
            return
        value, since = self._used.get(account, (0.0, at))
        if at >= since:
            self._used[account] = (self._decayed(value, since, at) + gpu_seconds, at)
        else:  # charged late (a job that ended before a restart): decay the charge, not what is there
            self._used[account] = (value + self._decayed(gpu_seconds, at, since), since)

    def of(self, account: Account, at: float) -> float:
        """The account's usage as it stands at time `at`."""
        value, since = self._used.get(account, (0.0, at))
        return self._decayed(value, since, at)

    def _decayed(self, value: float, since: float, at: float) -> float:
        return value * 2.0 ** (-max(0.0, at - since) / self.half_life)


def order_key(usage: float, shares: float) -> float:
    """Where a user stands: lower goes first. Shares must be above zero (policy.py checks them)."""
    return usage / shares
