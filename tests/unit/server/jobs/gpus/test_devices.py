"""GPU inventory settings and how a job's GPU request resolves (tao_server.gpus)."""

from __future__ import annotations

import pytest

from tao_server.errors import NoGpus
from tao_server.jobs.gpus.devices import inventory, resolve

TWO = ["0", "1"]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("none", []), (" none ", []), ("0,1", ["0", "1"]), ("0", ["0"]), (" 2, 3 ,", ["2", "3"])],
)
def test_inventory_setting_overrides_detection(setting, expected):
    assert inventory(setting) == expected


@pytest.mark.parametrize(
    ("request_", "available", "expected"),
    [
        ("auto", TWO, "all"),
        ("auto", [], ""),
        ("", TWO, "all"),
        ("none", TWO, ""),
        ("none", [], ""),
        ("0", TWO, ""),
        ("all", TWO, "all"),
        ("ALL", TWO, "all"),
        ("1", TWO, "count:1"),
        ("2", TWO, "count:2"),
        (" 2 ", TWO, "count:2"),
    ],
)
def test_resolve_request(request_, available, expected):
    assert resolve(request_, None, available) == expected


def test_explicit_indices_win_over_the_request():
    assert resolve("none", ["1"], TWO) == "ids:1"


def test_empty_indices_fall_back_to_the_request():
    assert resolve("auto", [], TWO) == "all"


def test_repeated_indices_count_once():
    assert resolve("auto", ["1", "0", "1"], TWO) == "ids:1,0"


@pytest.mark.parametrize("request_", ["all", "1", "2"])
def test_asking_for_gpus_on_a_host_without_any(request_):
    with pytest.raises(NoGpus) as info:
        resolve(request_, None, [])
    assert "the daemon's host has none" in info.value.message
    assert info.value.field == "gpus"


def test_count_larger_than_the_host():
    with pytest.raises(NoGpus) as info:
        resolve("3", None, TWO)
    assert "3 GPUs" in info.value.message
    assert "has 2 (0, 1)" in info.value.message


@pytest.mark.parametrize("request_", ["two", "-1", "1.5", "0,1"])
def test_bad_request_text(request_):
    with pytest.raises(NoGpus) as info:
        resolve(request_, None, TWO)
    assert repr(request_) in info.value.message
    assert "not valid" in info.value.message


def test_missing_indices_are_named():
    with pytest.raises(NoGpus) as info:
        resolve("auto", ["1", "5", "7"], TWO)
    assert info.value.field == "gpu_indices"
    assert "5, 7" in info.value.message
    assert "its GPUs: 0, 1" in info.value.message


def test_indices_on_a_host_without_gpus():
    with pytest.raises(NoGpus) as info:
        resolve("auto", ["0"], [])
    assert "its GPUs: none" in info.value.message


def test_unicode_digit_request_is_rejected_cleanly():
    with pytest.raises(NoGpus):
        resolve("²", None, TWO)


def test_bad_request_text_is_reported_as_such_on_a_host_without_gpus():
    with pytest.raises(NoGpus) as info:
        resolve("two", None, [])
    assert "not valid" in info.value.message
