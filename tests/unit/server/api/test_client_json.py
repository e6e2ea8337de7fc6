"""JSON from clients, bounded in size and depth (tao_server.api.client_json)."""

from __future__ import annotations

import pytest

from tao_server.api import client_json
from tao_server.api.client_json import MAX_DEPTH, UnreadableJson, parse


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("data", [nested(MAX_DEPTH), nested(MAX_DEPTH).encode()], ids=["text", "bytes"])
def test_json_up_to_the_depth_bound_is_read(data: str | bytes) -> None:
    value = parse(data)
    for _ in range(MAX_DEPTH - 1):
        [value] = value
    assert value == []


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 900, 5000])  # 900: Python's decoder itself would take it
def test_json_past_the_depth_bound_is_refused_by_name(levels: int) -> None:
    with pytest.raises(UnreadableJson) as refused:
        parse(nested(levels))
    assert refused.value.message == f"nested too deeply: arrays and objects more than {MAX_DEPTH} levels inside each other"


def test_objects_count_as_levels_as_arrays_do() -> None:
    deep = '{"a": ' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1)
    with pytest.raises(UnreadableJson, match="nested too deeply"):
        parse(deep)


def test_brackets_inside_strings_are_only_text() -> None:
    text = '{"args": ["' + "[" * 5000 + '"]}'
    assert parse(text) == {"args": ["[" * 5000]}


def test_wide_json_with_many_brackets_is_not_deep() -> None:
    assert parse("[" + ",".join(["[]"] * 10_000) + "]") == [[]] * 10_000


def test_text_is_measured_in_the_bytes_it_came_as() -> None:
    with pytest.raises(UnreadableJson) as refused:
        parse('{"type": "' + "\u00e9" * 2100 + '"}', max_bytes=4096)  # 2,112 characters, 4,212 bytes of UTF-8
    assert refused.value.message == "4212 bytes, more than the 4096 this daemon reads here"


def test_input_over_the_size_bound_is_refused_unparsed() -> None:
    with pytest.raises(UnreadableJson) as refused:
        parse('{"type": "' + "x" * 5000 + '"}', max_bytes=4096)
    assert refused.value.message == "5012 bytes, more than the 4096 this daemon reads here"


@pytest.mark.parametrize(
    ("data", "says", "position"),
    [
        ('{"type": "eof",}', "line 1, column 16: Expecting property name enclosed in double quotes", 15),
        ('{\n  "rows": 4,\n  "cols": x}', "line 3, column 11: Expecting value", 25),
        (b'{"caf\xe9": 1}', "cannot be decoded as utf-8 at byte 5: invalid continuation byte", 5),
        ("[" + "1" * 5000 + "]", "a number with more than 4300 digits", 0),
    ],
    ids=["malformed", "where-on-which-line", "not-utf-8", "long-number"],
)
def test_input_that_is_not_json_is_refused_saying_where(data: str | bytes, says: str, position: int) -> None:
    with pytest.raises(UnreadableJson) as refused:
        parse(data)
    assert (refused.value.message, refused.value.position) == (says, position)


def test_a_few_brackets_are_never_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[object] = []

    def walk(value: object, limit: int) -> bool:
        walked.append(value)
        return False

    monkeypatch.setattr(client_json, "_deeper_than", walk)
    parse('{"task": "detectnet_v2", "args": ["-e", "spec.txt"], "launch_config": {"Mounts": [{"source": "/a"}]}}')
    assert walked == []
