"""A network fuzzer for the live daemons (issue 10, point 4): mutated real
frames to rpyc-classic over TCP, mutated real requests to rpyc-registry
over UDP and TCP.

The seeds are real traffic: the client-to-server messages rpyc 6.0.2 sent
in proto/tests/data/messages.json (gen_vectors.py captured them) and the
registry requests rpyc's own registry clients send. Mutations: bit flips,
interesting bytes, inserted/deleted/duplicated runs, truncation, splices of
two seeds, random brine (values and whole request messages, some aimed at
the object ids the server just handed out), deep nesting, and, at the frame
level, wrong length fields, wrong compressed flags, mutated or bomb zlib
bodies, missing newlines and raw garbage.

A run's choices follow from its seed (how many cases there are follows
from the time bound, and the object ids aimed at are the live server's),
and it is bounded in time and in count. It sends to
127.0.0.1 only. The mutated frames may form real classic calls: run the
target as an unprivileged user in its own mount namespace
(test_netfuzz.py does).

    python tests/daemon/netfuzz.py {classic|udp|tcp} PORT [--seconds S] [--seed N]
"""

import argparse
import collections
import json
import random
import socket
import struct
import sys
import time
import zlib
from pathlib import Path

from rpyc.core import brine, consts

HOST = "127.0.0.1"
DATA = Path(__file__).resolve().parents[2] / "proto" / "tests" / "data"
COMPRESSION_THRESHOLD = 3000  # rpyc's Channel compresses payloads longer than this
INTERESTING_BYTES = [0x00, 0x01, 0x0A, 0x7F, 0x80, 0xFE, 0xFF]
INTERESTING_LENGTHS = [0, 1, 2, 5, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 64 << 20,
                       (1 << 30) - 1, 1 << 30, (1 << 30) + 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
# attribute names a generated request asks for: real ones and nonsense;
# nothing that ends the process (os._exit is the client's right in
# threaded mode, so it would end the daemon by contract, not by a fault)
NAMES = ["__class__", "__dict__", "__doc__", "__len__", "__getitem__", "__call__", "__iter__",
         "__repr__", "__module__", "__mro__", "__bases__", "__subclasses__", "__init__",
         "exposed_getmodule", "exposed_eval", "exposed_execute", "exposed_namespace",
         "getmodule", "eval", "execute", "namespace", "modules", "builtins", "sys", "platform",
         "version", "path", "append", "keys", "items", "get", "pop", "", "\x00", "é" * 3, "a" * 300]
CODE = ["1 + 1", "[0] * 1000", "'x' * 70000", "dict(a=1)", "(lambda: 1)", "sum(range(100))",
        "b'\\x00' * 5000", "1 / 0", "int('z')", "[][1]", "None"]
MAX_RECV = 1 << 20


def frame(payload, compressed=None):
    """What rpyc's Channel.send writes for payload."""
    if compressed is None:
        compressed = len(payload) > COMPRESSION_THRESHOLD
    body = zlib.compress(payload, 1) if compressed else payload
    return struct.pack("!LB", len(body), int(compressed)) + body + b"\n"


def classic_seeds():
    """Unframed client-to-server messages of real rpyc sessions, plus the
    hand-made requests, from proto/tests/data/messages.json."""
    vectors = json.loads((DATA / "messages.json").read_text())
    seeds = [bytes.fromhex(v["hex"]) for v in vectors
             if "_c2s_" in v["name"] or v["message"].get("type") == "request"]
    assert len(seeds) >= 20, "proto/tests/data/messages.json holds too few requests"
    return seeds


def registry_seeds():
    """What rpyc 6.0.2's registry clients send (rpyc/utils/registry.py)."""
    return [brine.dump(m) for m in [
        ("RPYC", "REGISTER", (("NETFUZZ",), 18861)),
        ("RPYC", "REGISTER", (("SLAVE", "CLASSIC", "X" * 40), 1)),
        ("RPYC", "REGISTER", ((), 65535)),
        ("RPYC", "QUERY", ("NETFUZZ",)),
        ("RPYC", "QUERY", ("SLAVE",)),
        ("RPYC", "UNREGISTER", (18861,)),
        ("RPYC", "LIST", ((None,),)),
        ("RPYC", "LIST", (("127.0.0.1",),)),
    ]]


class Generator:
    """Random brine values and messages, and mutations of byte strings."""

    def __init__(self, rnd, seeds):
        self.rnd = rnd
        self.seeds = seeds
        self.tup1 = brine.dump((None,))[:1]  # brine's one-tuple tag
        self.bomb = zlib.compress(b"\x00" * (16 << 20), 9)  # 16 MiB of zeros in ~16 KiB

    # ------------------------------------------------------------ brine values
    def value(self, depth=0, repeated=1):
        """`repeated`: how many times the enclosing tuples repeat this value;
        a repeat count is capped so a value holds at most ~2 000 leaves
        (four nested repeats of up to 299 once made a brine dump of
        billions of items, and the harness ran out of memory)."""
        r = self.rnd
        kind = r.randrange(14 if depth < 4 else 10)
        if kind == 0:
            return None
        if kind == 1:
            return r.choice([True, False, Ellipsis, NotImplemented])
        if kind == 2:
            return r.choice([0, 1, -1, 255, 256, -256, 2**31, -2**31, 2**63, -2**64, 10**40])
        if kind == 3:
            return r.randrange(-2**70, 2**70)
        if kind == 4:
            return r.choice([0.0, -0.0, 1.5, float("inf"), float("nan"), 1e308, complex(1, -2)])
        if kind == 5:
            return r.choice(NAMES + CODE)
        if kind == 6:
            return "".join(chr(r.randrange(0x20, 0x3000)) for _ in range(r.randrange(20)))
        if kind == 7:
            return r.randbytes(r.choice([0, 1, 10, 300, 5000]))
        if kind == 8:
            return r.randrange(1 << 48) | 0x7F0000000000  # looks like an object id
        if kind == 9:
            return slice(r.randrange(-5, 5), None, r.choice([None, 1, -1, 0]))
        if kind in (10, 11):
            count = r.randrange(6)
            return tuple(self.value(depth + 1, repeated * max(count, 1)) for _ in range(count))
        if kind == 12:
            items = (self.value(4, repeated) for _ in range(r.randrange(4)))
            return frozenset(v for v in items if not isinstance(v, slice))  # unhashable
        times = r.randrange(1, max(2, min(300, 2_000 // repeated)))
        return (self.value(depth + 1, repeated * times),) * times

    def dump(self, value):
        try:
            return brine.dump(value)
        except (ValueError, TypeError, RecursionError):
            return brine.dump(None)

    def deep(self):
        """A one-tuple nested far deeper than any sane message."""
        return self.tup1 * self.rnd.choice([64, 1000, 100_000]) + brine.dump(None)

    # ------------------------------------------------------------ messages
    def boxed(self, ids, depth=0):
        r = self.rnd
        kind = r.randrange(5 if depth < 3 else 3)
        if kind == 0 and ids:
            return (consts.LABEL_LOCAL_REF, r.choice(ids))
        if kind == 1:
            return (r.choice([consts.LABEL_LOCAL_REF, consts.LABEL_REMOTE_REF, 0, 5, 255]),
                    (r.choice(NAMES), r.randrange(1 << 48), r.randrange(1 << 48)))
        if kind in (2, 3):
            return (consts.LABEL_VALUE, self.value(depth + 2))
        return (consts.LABEL_TUPLE, tuple(self.boxed(ids, depth + 1) for _ in range(r.randrange(4))))

    def request(self, ids):
        """A well-formed request with random handler and arguments, often on
        a real object id of this connection."""
        r = self.rnd
        handler = r.choice(range(0, 23)) if r.random() < 0.2 else r.choice(
            [consts.HANDLE_GETATTR, consts.HANDLE_CALLATTR, consts.HANDLE_CALL, consts.HANDLE_DIR,
             consts.HANDLE_REPR, consts.HANDLE_STR, consts.HANDLE_HASH, consts.HANDLE_INSPECT,
             consts.HANDLE_CMP, consts.HANDLE_DEL, consts.HANDLE_BUFFITER, consts.HANDLE_SETATTR,
             consts.HANDLE_DELATTR, consts.HANDLE_INSTANCECHECK, consts.HANDLE_CTXEXIT])
        target = (consts.LABEL_LOCAL_REF, r.choice(ids)) if ids and r.random() < 0.8 \
            else self.boxed(ids)
        extra = tuple(self.boxed(ids) if r.random() < 0.5 else
                      (consts.LABEL_VALUE, r.choice(NAMES + CODE)) for _ in range(r.randrange(4)))
        args = (consts.LABEL_TUPLE, (target,) + extra)
        msgtype = consts.MSG_REQUEST if r.random() < 0.9 else r.randrange(8)
        seq = r.choice([0, 1, 2**31, -1, r.randrange(1 << 20)])
        return bytes([msgtype]) + self.dump((seq, (handler, args)))

    # ------------------------------------------------------------ mutations
    def mutate(self, data):
        """data with one to three mutations; returns (bytes, names)."""
        r = self.rnd
        names = []
        for _ in range(r.choice([1, 1, 1, 2, 3])):
            kind = r.randrange(9)
            data = bytearray(data)
            n = len(data)
            if kind == 0 and n:
                names.append("bitflip")
                for _ in range(r.randrange(1, 9)):
                    i = r.randrange(n)
                    data[i] ^= 1 << r.randrange(8)
            elif kind == 1 and n:
                names.append("byte")
                for _ in range(r.randrange(1, 4)):
                    data[r.randrange(n)] = r.choice(INTERESTING_BYTES)
            elif kind == 2:
                names.append("insert")
                i = r.randrange(n + 1)
                data[i:i] = r.randbytes(r.randrange(1, 16))
            elif kind == 3 and n > 1:
                names.append("delete")
                i = r.randrange(n)
                del data[i:i + r.randrange(1, max(2, n // 4))]
            elif kind == 4 and n:
                names.append("duplicate")
                i = r.randrange(n)
                j = min(n, i + r.randrange(1, 64))
                data[j:j] = data[i:j] * r.randrange(1, 50)
            elif kind == 5 and n > 1:
                names.append("truncate")
                data = data[:r.randrange(1, n)]
            elif kind == 6:
                names.append("splice")
                other = r.choice(self.seeds)
                data = data[:r.randrange(n + 1)] + other[r.randrange(len(other) + 1):]
            elif kind == 7 and n >= 2:
                names.append("int")
                i = r.randrange(n - 1)
                width = r.choice([1, 2, 4, 8])
                value = r.choice([0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**64 - 1])
                data[i:i + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
            else:
                names.append("brine-insert")
                i = r.randrange(n + 1)
                data[i:i] = self.dump(self.value())
            data = bytes(data)
        return data, names

    # ------------------------------------------------------------ classic frames
    def classic_message(self, ids):
        """(payload, how) for one classic message."""
        r = self.rnd
        roll = r.random()
        if roll < 0.15:
            return r.choice(self.seeds), ["seed"]
        if roll < 0.35:
            return self.request(ids), ["request"]
        if roll < 0.45:
            payload, names = self.mutate(self.request(ids))
            return payload, ["request"] + names
        if roll < 0.50:
            return bytes([consts.MSG_REQUEST]) + self.dump(self.value()), ["brine"]
        if roll < 0.53:
            return bytes([r.randrange(4)]) + self.deep(), ["deep"]
        payload, names = self.mutate(r.choice(self.seeds))
        return payload, names

    def classic_frame(self, ids):
        """(bytes to send, how) for one classic frame, most of them well
        framed so that the payload reaches the decoders."""
        r = self.rnd
        payload, names = self.classic_message(ids)
        roll = r.random()
        if roll < 0.75:
            return frame(payload), names
        body = payload
        flag = 0
        if roll < 0.80:
            names.append("zlib-mutated")
            body, _ = self.mutate(zlib.compress(payload, 1))
            flag = 1
        elif roll < 0.82:
            names.append("zlib-bomb")
            body, flag = self.bomb, 1
        elif roll < 0.86:
            names.append("flag")
            flag = r.choice([1, 2, 0x80, 0xFF])
        if roll >= 0.86:
            kind = r.randrange(4)
            if kind == 0:
                names.append("length")
                return struct.pack("!LB", r.choice(INTERESTING_LENGTHS + [len(body) + r.choice(
                    [-2, -1, 1, 2, 100])]) & 0xFFFFFFFF, flag) + body + b"\n", names
            if kind == 1:
                names.append("newline")
                return struct.pack("!LB", len(body), flag) + body + r.choice([b"", b"\x00", b"\n\n"]), names
            if kind == 2:
                names.append("frame-truncated")
                whole = frame(payload)
                return whole[:r.randrange(len(whole))], names
            names.append("garbage")
            return r.randbytes(r.choice([1, 4, 5, 6, 64, 4096])), names
        return struct.pack("!LB", len(body), flag) + body + b"\n", names

    # ------------------------------------------------------------ registry
    def registry_datagram(self):
        r = self.rnd
        roll = r.random()
        if roll < 0.10:
            return r.choice(self.seeds), ["seed"]
        if roll < 0.25:
            magic = "RPYC" if r.random() < 0.8 else self.value(3)
            cmd = r.choice(["REGISTER", "QUERY", "UNREGISTER", "LIST", "register", "", "X" * 100])
            return self.dump((magic, cmd, self.value(1))), ["brine-request"]
        if roll < 0.30:
            return self.dump(self.value()), ["brine"]
        if roll < 0.32:
            return self.deep(), ["deep"]
        if roll < 0.35:
            return r.randbytes(r.choice([0, 1, 7, 1500, 9000])), ["garbage"]
        return self.mutate(r.choice(self.seeds))


# ---------------------------------------------------------------- replies
def parse_frames(buf):
    """Whole frames at the start of buf: (payloads, rest)."""
    out = []
    while len(buf) >= 5:
        length, flag = struct.unpack("!LB", buf[:5])
        if len(buf) < 5 + length + 1:
            break
        body = buf[5:5 + length]
        buf = buf[5 + length + 1:]
        try:
            out.append(zlib.decompress(body) if flag else body)
        except zlib.error:
            pass
    return out, buf


def object_ids(payload, found):
    """The id packs a server reply hands out (boxed as remote references)."""
    if not payload or payload[0] != consts.MSG_REPLY:
        return
    try:
        _seq, boxed = brine.load(payload[1:])
    except Exception:  # noqa: BLE001 - not ours to judge here
        return

    def walk(b, depth=0):
        if depth > 20 or not isinstance(b, tuple) or len(b) != 2:
            return
        label, value = b
        if label == consts.LABEL_REMOTE_REF and isinstance(value, tuple) and len(value) == 3:
            found.append(value)
        elif label == consts.LABEL_TUPLE and isinstance(value, tuple):
            for item in value:
                walk(item, depth + 1)

    walk(boxed)


# ---------------------------------------------------------------- the runs
class Run:
    def __init__(self, target, port, seconds, seed, max_cases, alive):
        self.target, self.port = target, port
        self.deadline = time.monotonic() + seconds
        self.seed, self.max_cases = seed, max_cases
        self.alive = alive or (lambda: True)
        self.rnd = random.Random(seed)
        seeds = classic_seeds() if target == "classic" else registry_seeds()
        self.gen = Generator(self.rnd, seeds)
        self.stats = collections.Counter()
        self.mutations = collections.Counter()
        self.last = collections.deque(maxlen=20)  # the last cases, for a report
        self.dead = None

    def over(self):
        return (self.stats["cases"] >= self.max_cases or time.monotonic() >= self.deadline
                or self.dead is not None)

    def check_alive(self):
        if self.stats["cases"] % 50 == 0 and not self.alive():
            self.dead = f"the daemon died after case {self.stats['cases']}"

    def note(self, sent, names):
        self.stats["cases"] += 1
        self.stats["bytes"] += sum(len(s) for s in sent)
        self.mutations.update(names)
        self.last.append({"case": self.stats["cases"], "how": names,
                          "hex": [s[:4096].hex() for s in sent]})

    def connect(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(2)
        try:
            sock.connect((HOST, self.port))
        except OSError as e:
            sock.close()
            self.stats[f"connect {type(e).__name__}"] += 1
            if not self.alive():
                self.dead = f"the daemon died before case {self.stats['cases'] + 1}"
            return None
        return sock

    def drain(self, sock, quiet, limit, frames=None):
        """Reads what the server says until it goes quiet or closes, or has
        sent `frames` whole frames."""
        data = b""
        end = time.monotonic() + limit
        sock.settimeout(quiet)
        while time.monotonic() < end and len(data) < MAX_RECV:
            if frames and len(parse_frames(data)[0]) >= frames:
                break
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                self.stats["reset"] += 1
                break
            if not chunk:
                self.stats["closed by server"] += 1
                break
            data += chunk
        return data

    def classic_case(self):
        sock = self.connect()
        if sock is None:
            return
        r = self.rnd
        sent, names, ids = [], [], []
        try:
            with sock:
                if r.random() < 0.6:  # a real GETROOT first: real ids to aim at
                    getroot = frame(bytes([consts.MSG_REQUEST]) + brine.dump(
                        (0, (consts.HANDLE_GETROOT, (consts.LABEL_TUPLE, ())))))
                    sock.sendall(getroot)
                    sent.append(getroot)
                    payloads, _ = parse_frames(self.drain(sock, 2, 2, frames=1))
                    for p in payloads:
                        object_ids(p, ids)
                    self.stats["replies"] += len(payloads)
                for _ in range(r.randrange(1, 6)):
                    data, how = self.gen.classic_frame(ids)
                    sent.append(data)
                    names += how
                    try:
                        if r.random() < 0.1 and len(data) > 2:  # in pieces
                            cut = r.randrange(1, len(data))
                            sock.sendall(data[:cut])
                            time.sleep(0.001)
                            data = data[cut:]
                        sock.sendall(data)
                    except OSError:
                        self.stats["send refused"] += 1
                        break
                    self.stats["frames"] += 1
                    if r.random() < 0.3:
                        payloads, _ = parse_frames(self.drain(sock, 0.02, 0.5))
                        for p in payloads:
                            object_ids(p, ids)
                        self.stats["replies"] += len(payloads)
                reply = self.drain(sock, 0.03, 0.5)
                self.stats["replies"] += len(parse_frames(reply)[0])
                if r.random() < 0.3:  # close with a reset, as a killed client does
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            self.note(sent, names or ["none"])

    def udp_case(self, sock):
        data, names = self.gen.registry_datagram()
        data = data[:65000]
        try:
            sock.sendto(data, (HOST, self.port))
            self.stats["datagrams"] += 1
        except OSError as e:
            self.stats[f"sendto {type(e).__name__}"] += 1
        # take whatever answers are there, without waiting for them
        while True:
            try:
                sock.recvfrom(65536)
                self.stats["replies"] += 1
            except (BlockingIOError, ConnectionRefusedError):
                break
        self.note([data], names)
        if self.stats["cases"] % 200 == 0:
            time.sleep(0.01)  # let the daemon breathe (and the log keep up)

    def tcp_registry_case(self):
        sock = self.connect()
        if sock is None:
            return
        data, names = self.gen.registry_datagram()
        with sock:
            try:
                if self.rnd.random() < 0.1 and len(data) > 2:
                    cut = self.rnd.randrange(1, len(data))
                    sock.sendall(data[:cut])
                    time.sleep(0.002)
                    data = data[cut:]
                sock.sendall(data)
            except OSError:
                self.stats["send refused"] += 1
            if self.drain(sock, 0.05, 0.3):
                self.stats["replies"] += 1
        self.note([data], names)

    def run(self):
        started = time.monotonic()
        if self.target == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                while not self.over():
                    self.udp_case(sock)
                    self.check_alive()
        else:
            case = self.classic_case if self.target == "classic" else self.tcp_registry_case
            while not self.over():
                case()
                self.check_alive()
        return {
            "target": self.target, "seed": self.seed,
            "seconds": round(time.monotonic() - started, 1),
            "cases": self.stats["cases"], "stats": dict(self.stats),
            "mutations": dict(self.mutations.most_common()), "dead": self.dead,
        }


def fuzz(target, port, seconds, seed, max_cases=1_000_000, alive=None, last_cases=None):
    """Fuzzes the daemon at 127.0.0.1:port; returns the figures. With
    last_cases (a path), the last 20 cases are written there as JSON lines."""
    run = Run(target, port, seconds, seed, max_cases, alive)
    try:
        return run.run()
    finally:
        if last_cases:
            with open(last_cases, "w") as f:
                for case in run.last:
                    f.write(json.dumps(case) + "\n")


def main():
    parser = argparse.ArgumentParser(description="fuzz a live rpycd daemon on 127.0.0.1")
    parser.add_argument("target", choices=["classic", "udp", "tcp"])
    parser.add_argument("port", type=int)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--max-cases", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"netfuzz seed={args.seed}", file=sys.stderr)
    print(json.dumps(fuzz(args.target, args.port, args.seconds, args.seed, args.max_cases)))


if __name__ == "__main__":
    main()
