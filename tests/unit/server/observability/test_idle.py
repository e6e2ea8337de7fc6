"""Idle GPUs (tao_server.observability.idle): when a held device counts as idle, what its job's condition says, and when."""

from __future__ import annotations

import pytest

from tao_server.observability.idle import IdleChange, IdleTracker, duration

THRESHOLD, AFTER = 5.0, 600.0


def tracker() -> IdleTracker:
    return IdleTracker(THRESHOLD, AFTER)


def test_a_held_device_under_the_threshold_long_enough_gives_its_job_a_condition() -> None:
    idle = tracker()
    assert idle.observe({"1": ("job-a", 0.0)}, now=1000) == []
    assert idle.condition("job-a", now=1000 + AFTER - 1) is None  # not yet
    assert idle.observe({"1": ("job-a", 3.0)}, now=1000 + AFTER) == [IdleChange("job-a", "1", True, AFTER)]
    assert idle.condition("job-a", now=1000 + 12 * 60) == "GPU 1 idle for 12 min"
    assert idle.condition("job-b", now=1000 + 12 * 60) is None


def test_the_condition_clears_when_the_device_works_again_and_says_how_long_it_idled() -> None:
    idle = tracker()
    idle.observe({"1": ("job-a", 0.0)}, now=0)
    idle.observe({"1": ("job-a", 0.0)}, now=AFTER)
    assert idle.observe({"1": ("job-a", 80.0)}, now=14 * 60) == [IdleChange("job-a", "1", False, 14 * 60)]
    assert idle.condition("job-a", now=14 * 60) is None
    assert idle.idle_seconds("1", now=14 * 60) is None


def test_a_short_pause_says_nothing_and_restarts_the_count() -> None:
    idle = tracker()
    idle.observe({"0": ("job-a", 0.0)}, now=0)
    assert idle.observe({"0": ("job-a", 50.0)}, now=AFTER - 1) == []  # busy again before it was long enough: nothing to say
    idle.observe({"0": ("job-a", 0.0)}, now=AFTER)
    assert idle.condition("job-a", now=2 * AFTER - 1) is None  # idle since AFTER, not since 0


def test_idleness_is_said_once_however_long_it_lasts() -> None:
    idle = tracker()
    changes = [change for now in range(0, 3600, 5) for change in idle.observe({"0": ("job-a", 0.0)}, now=now)]
    assert changes == [IdleChange("job-a", "0", True, AFTER)]
    assert idle.condition("job-a", now=3600) == "GPU 0 idle for 1 h 0 min"


def test_a_device_that_changes_hands_is_idle_at_most_since_the_new_job_got_it() -> None:
    idle = tracker()
    idle.observe({"0": ("job-a", 0.0)}, now=0)
    idle.observe({"0": (None, 0.0)}, now=100)  # job-a ended: its device is free
    idle.observe({"0": ("job-b", 0.0)}, now=200)
    assert idle.condition("job-b", now=200 + AFTER - 1) is None
    assert idle.condition("job-b", now=200 + AFTER) == "GPU 0 idle for 10 min"
    assert idle.condition("job-a", now=200 + AFTER) is None


def test_a_pass_that_could_not_read_the_device_changes_nothing() -> None:
    idle = tracker()
    idle.observe({"0": ("job-a", 0.0)}, now=0)
    assert idle.observe({"0": ("job-a", None)}, now=AFTER) == []
    assert idle.condition("job-a", now=AFTER) == "GPU 0 idle for 10 min"


def test_several_idle_devices_of_one_job_are_one_condition_with_the_shortest_time() -> None:
    idle = tracker()
    idle.observe({"3": ("job-a", 0.0), "1": ("job-a", 0.0), "10": ("job-a", 90.0)}, now=0)
    idle.observe({"3": ("job-a", 90.0)}, now=60)
    idle.observe({"3": ("job-a", 0.0), "1": ("job-a", 0.0), "10": ("job-a", 0.0)}, now=120)
    assert idle.condition("job-a", now=120 + AFTER) == "GPUs 1, 3, 10 idle for 10 min"
    assert idle.condition("job-a", now=AFTER) == "GPU 1 idle for 10 min"


def test_idle_after_zero_never_gives_a_condition_but_the_idle_time_is_kept() -> None:
    idle = IdleTracker(THRESHOLD, 0)
    assert idle.observe({"0": ("job-a", 0.0)}, now=0) == []
    assert idle.observe({"0": ("job-a", 0.0)}, now=10**6) == []
    assert idle.condition("job-a", now=10**6) is None
    assert idle.idle_seconds("0", now=10**6) == 10**6


def test_the_change_messages_say_the_device_the_time_and_the_threshold() -> None:
    assert IdleChange("j", "1", True, 600).message(5.0) == "GPU 1 idle for 10 min (under 5% utilisation)"
    assert IdleChange("j", "1", False, 840).message(5.0) == "GPU 1 busy again after 14 min idle"


@pytest.mark.parametrize(
    ("seconds", "words"), [(0, "0 s"), (59.9, "59 s"), (60, "1 min"), (3599, "59 min"), (3600, "1 h 0 min"), (7500, "2 h 5 min")]
)
def test_durations_read_as_people_say_them(seconds: float, words: str) -> None:
    assert duration(seconds) == words
