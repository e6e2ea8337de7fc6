"""The Docker backend's output framing (backends/docker/stream.py): demultiplexing, offsets and the head."""

from __future__ import annotations

import struct

import pytest

from tao_server.backends.docker.stream import HEAD_SIZE, AttachedStream, Output


class Reads:
    """A socket-like object whose read() returns the given pieces, one per call, then b""."""

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = list(pieces)
        self.closed = False

    def read(self, _size: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    def close(self) -> None:
        self.closed = True


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def test_frames_are_unwrapped_and_batched_per_read() -> None:
    data = frame(1, b"out 1\n") + frame(2, b"err 1\n") + frame(1, b"out 2\n")
    sock = Reads(data)
    assert list(AttachedStream(sock, tty=False)) == [b"out 1\nerr 1\nout 2\n"]
    assert sock.closed


@pytest.mark.parametrize("cut", [1, 4, 7, 8, 9, 13, 20])
def test_a_frame_split_across_reads_is_joined(cut: int) -> None:
    data = frame(1, b"hello world\n") + frame(2, b"bye\n")
    chunks = list(AttachedStream(Reads(data[:cut], data[cut:]), tty=False))
    assert b"".join(chunks) == b"hello world\nbye\n"
    assert all(chunks)  # no empty chunk is passed on


def test_a_tty_stream_is_passed_on_raw() -> None:
    assert list(AttachedStream(Reads(b"\x01\x00\x00\x00raw", b"bytes"), tty=True)) == [b"\x01\x00\x00\x00raw", b"bytes"]


def test_an_empty_frame_and_a_large_one() -> None:
    big = bytes(range(256)) * 1024
    assert b"".join(AttachedStream(Reads(frame(1, b""), frame(1, big)), tty=False)) == big


@pytest.mark.parametrize("offset", [0, 1, 3, 4, 5, 9, 10, 11, 100])
def test_output_starts_at_the_offset_across_chunks(offset: int) -> None:
    chunks = [b"abc", b"d", b"efghij"]
    output = Output(iter(chunks), offset, lambda: None, bytearray())
    got = list(output)
    assert b"".join(got) == b"abcdefghij"[offset:]
    assert all(got)


def test_the_head_holds_the_first_bytes_by_position_however_often_the_output_is_read() -> None:
    head = bytearray()
    whole = [b"[FATAL tini (7)] exec", b" missing failed: No such file or directory\n"]
    assert b"".join(Output(iter(whole[:1]), 0, lambda: None, head)) == whole[0]  # a read cut short
    assert b"".join(Output(iter(whole), 5, lambda: None, head)) == b"".join(whole)[5:]  # a replay from an offset
    assert b"".join(Output(iter(whole), 0, lambda: None, head)) == b"".join(whole)
    assert bytes(head) == b"".join(whole)


def test_the_head_stops_at_its_size() -> None:
    head = bytearray()
    list(Output(iter([b"x" * (HEAD_SIZE - 1), b"yy", b"zzz"]), 0, lambda: None, head))
    assert bytes(head) == b"x" * (HEAD_SIZE - 1) + b"y"


def test_close_reaches_the_stream() -> None:
    closed: list[bool] = []
    Output(iter([]), 0, lambda: closed.append(True), bytearray()).close()
    assert closed == [True]
