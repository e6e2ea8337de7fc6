"""Job time limits in Slurm's forms (tao_common.time_limits), which the daemon and its policy file read."""

from __future__ import annotations

import pytest

from tao_common.time_limits import NotATimeLimit, parse, shown, slurm_form


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 5400),  # a bare number is minutes, as in Slurm
        ("5:30", 330),
        ("2:00:00", 7200),
        ("1-12", 129600),
        ("1-12:30", 131400),
        ("1-0:0:1", 86401),
        (" 10 ", 600),
    ],
)
def test_slurm_s_forms_read_as_seconds(text, seconds):
    assert parse(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1:2:3:4", "-5", "1-", "1.5", "infinite", "UNLIMITED", "2h"])
def test_other_forms_are_refused_naming_the_ones_taken(text):
    with pytest.raises(NotATimeLimit) as info:
        parse(text)
    assert "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS" in str(info.value)


@pytest.mark.parametrize("text", ["0", "0:00", "0-0"])
def test_a_zero_limit_is_refused_rather_than_read_as_none(text):
    with pytest.raises(NotATimeLimit) as info:
        parse(text)
    assert "no time at all" in str(info.value)


def test_sbatch_gets_whole_minutes_rounded_up():
    assert slurm_form(61) == "0-00:02:00"
    assert slurm_form(129600) == "1-12:00:00"


def test_limits_show_as_people_read_them():
    assert shown(1800) == "0:30:00"
    assert shown(129600) == "1-12:00:00"
