"""Reads a file of frames with rpyc 6.0.2's own Channel.recv and writes each
payload it gets back out as a 4-byte big-endian length and the payload, so
the Rust test can compare them with what it framed."""
import struct
import sys

import rpyc
from rpyc.core.channel import Channel

assert rpyc.__version__ == "6.0.2", rpyc.__version__


class FileStream:
    """The part of rpyc's Stream interface that Channel.recv uses."""

    MAX_IO_CHUNK = 64000

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def read(self, count):
        if self.pos + count > len(self.data):
            raise EOFError("frame stream ends early")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk


def main(frames_path, payloads_path):
    with open(frames_path, "rb") as f:
        stream = FileStream(f.read())
    channel = Channel(stream)
    with open(payloads_path, "wb") as out:
        while stream.pos < len(stream.data):
            payload = channel.recv()
            out.write(struct.pack("!L", len(payload)) + payload)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
