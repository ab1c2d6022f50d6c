"""`exec`'s arguments, and the demultiplexing of an exec stream without a TTY."""

import pytest

from devstack.cli import split_exec_args
from devstack.docker.engine import STDERR, STDOUT, FrameDemuxer
from devstack.errors import DevstackError


# -- exec's arguments -------------------------------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    (["ls", "-la"], ("notebook", ["ls", "-la"])),
    (["notebook", "--", "ls", "-la"], ("notebook", ["ls", "-la"])),
    (["proxy", "nginx", "-t"], ("proxy", ["nginx", "-t"])),
    (["proxy", "--", "--weird-first-arg"], ("proxy", ["--weird-first-arg"])),
    (["sh", "-c", "exit 3"], ("notebook", ["sh", "-c", "exit 3"])),
])
def test_exec_arguments_split_into_service_and_command(args, expected):
    assert split_exec_args(args) == expected


@pytest.mark.parametrize("args", [["notebook"], ["proxy", "--"], []])
def test_exec_without_a_command_says_how(args):
    with pytest.raises(DevstackError, match="no command to run"):
        split_exec_args(args)


# -- the non-TTY exec stream ------------------------------------------------------------


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_demuxer_reassembles_frames_split_anywhere():
    wire = frame(STDOUT, b"hello ") + frame(STDERR, b"oops\n") + frame(STDOUT, b"") + frame(STDOUT, b"x" * 70000)
    expected = [(STDOUT, b"hello "), (STDERR, b"oops\n"), (STDOUT, b""), (STDOUT, b"x" * 70000)]
    for size in (1, 3, 7, 8, 9, 13, 4096, len(wire)):
        demux = FrameDemuxer()
        frames = []
        for start in range(0, len(wire), size):
            frames += demux.feed(wire[start:start + size])
        assert frames == expected, size
        assert demux.pending == 0


def test_demuxer_holds_a_partial_header_until_the_rest_arrives():
    demux = FrameDemuxer()
    wire = frame(STDERR, b"\x00\x01\x02 binary")
    assert demux.feed(wire[:5]) == []
    assert demux.pending == 5
    assert demux.feed(wire[5:12]) == []
    assert demux.feed(wire[12:]) == [(STDERR, b"\x00\x01\x02 binary")]
