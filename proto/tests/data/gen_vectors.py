#!/usr/bin/env python3
"""Generate RPyC 6.0.2 wire-format test vectors for rpycd.

Run:  PYTHONHASHSEED=0 python proto/tests/data/gen_vectors.py
Writes brine.json, frames.json and messages.json next to this file (formats in
README.md). Every vector comes from rpyc's own code (brine.dump, Channel.send,
real Connection traffic) and the files are byte-identical between runs.
"""
import os
import sys

# frozenset iteration order (so brine's frozenset encoding) depends on str hashes:
# pin the seed by re-executing ourselves before anything is hashed.
# RPYC_BIND_THREADS=true would prefix every message with two thread ids.
if os.environ.get("PYTHONHASHSEED") != "0" or os.environ.get("RPYC_BIND_THREADS"):
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("RPYC_BIND_THREADS", None)
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

import gc, json, random, re, socket, struct, threading, zlib  # noqa: E401,E402

import rpyc  # noqa: E402
from rpyc.core import brine, consts, protocol, vinegar  # noqa: E402
from rpyc.core.channel import Channel  # noqa: E402
from rpyc.core.stream import SocketStream  # noqa: E402

if rpyc.__version__ != "6.0.2":
    sys.exit(f"gen_vectors.py needs rpyc 6.0.2, found {rpyc.__version__}")
assert sys.flags.hash_randomization == 0, "PYTHONHASHSEED=0 did not take effect"
assert not protocol.DEFAULT_CONFIG["bind_threads"]

OUT = os.path.dirname(os.path.abspath(__file__))
HANDLERS = {v: k[7:].lower() for k, v in vars(consts).items() if k.startswith("HANDLE_")}
ID_BASE = 0x7F0000001000   # substitute ids look like real CPython addresses (15 digits, INT_L1)

# ---------------------------------------------------------------- EXPR codec
# Keyed by exact type, like brine's own registry (bool is not an int here).
ENC = {
    type(None): lambda v: ["none"],
    bool: lambda v: ["bool", v],
    type(NotImplemented): lambda v: ["notimpl"],
    type(Ellipsis): lambda v: ["ellipsis"],
    int: lambda v: ["int", str(v)],                           # a string: big ints stay exact
    float: lambda v: ["float", struct.pack("!d", v).hex()],   # exact bits (-0.0, NaN payloads)
    complex: lambda v: ["complex", struct.pack("!dd", v.real, v.imag).hex()],
    str: lambda v: ["str", v],
    bytes: lambda v: ["bytes", v.hex()],
    slice: lambda v: ["slice", enc(v.start), enc(v.stop), enc(v.step)],
    tuple: lambda v: ["tuple", [enc(x) for x in v]],
    frozenset: lambda v: ["frozenset", [enc(x) for x in tuple(v)]],   # brine dumps tuple(fs): same order
}
DEC = {
    "none": lambda e: None, "notimpl": lambda e: NotImplemented, "ellipsis": lambda e: Ellipsis,
    "bool": lambda e: e[1], "int": lambda e: int(e[1]), "str": lambda e: e[1],
    "float": lambda e: struct.unpack("!d", bytes.fromhex(e[1]))[0],
    "complex": lambda e: complex(*struct.unpack("!dd", bytes.fromhex(e[1]))),
    "bytes": lambda e: bytes.fromhex(e[1]),
    "slice": lambda e: slice(dec(e[1]), dec(e[2]), dec(e[3])),
    "tuple": lambda e: tuple(dec(x) for x in e[1]),
    "frozenset": lambda e: frozenset(dec(x) for x in e[1]),
}


def enc(v):
    """Python brine value -> JSON EXPR."""
    return ENC[type(v)](v)


def dec(e):
    """JSON EXPR -> Python value; used to prove every EXPR rebuilds the same bytes."""
    return DEC[e[0]](e)


def write_json(fname, vectors):
    names = [v["name"] for v in vectors]
    assert len(names) == len(set(names)), "duplicate vector names"
    # one vector per line (grep/diff friendly); sort_keys makes it canonical
    text = "[\n" + ",\n".join(json.dumps(v, sort_keys=True, ensure_ascii=False) for v in vectors) + "\n]\n"
    with open(os.path.join(OUT, fname), "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    return len(vectors)


# ---------------------------------------------------------------- brine.json
def brine_values():
    v = [("none", None), ("true", True), ("false", False), ("notimpl", NotImplemented), ("ellipsis", Ellipsis)]
    # immediate ints are -48..159, one byte 0x50+n; -49 and 160 fall back to INT_L1.
    # INT_L1/L4 hold str(n): the length counts the '-' sign, 256 chars switches to INT_L4.
    v += [("int_l1_below_imm", -49), ("int_imm_min", -48), ("int_imm_min_plus1", -47), ("int_imm_minus1", -1),
          ("int_imm_zero", 0), ("int_imm_one", 1), ("int_imm_two", 2), ("int_imm_100", 100),
          ("int_imm_max_minus1", 158), ("int_imm_max", 159), ("int_l1_above_imm", 160), ("int_l1_255", 255),
          ("int_l1_256", 256), ("int_l1_minus256", -256), ("int_l1_i32_max", 2**31 - 1), ("int_l1_i32_min", -2**31),
          ("int_l1_2pow32", 2**32), ("int_l1_i64_max", 2**63 - 1), ("int_l1_2pow63", 2**63),
          ("int_l1_i64_min", -2**63), ("int_l1_i64_min_minus1", -2**63 - 1), ("int_l1_u64_max", 2**64 - 1),
          ("int_l1_2pow64", 2**64), ("int_l1_minus2pow64", -2**64), ("int_l1_2pow128", 2**128),
          ("int_l1_255_digits", 10**254), ("int_l1_minus_255_chars", -(10**253)),
          ("int_l4_256_digits", 10**255), ("int_l4_minus_256_chars", -(10**254)), ("int_l4_10pow300", 10**300),
          ("int_l4_minus_10pow1000", -(10**1000)), ("int_l4_2pow4000", 2**4000),
          ("tuple_all_imm_ints", tuple(range(-48, 160)))]
    fl = lambda h: struct.unpack("!d", bytes.fromhex(h))[0]  # noqa: E731
    v += [("float_" + n, x) for n, x in [
        ("zero", 0.0), ("neg_zero", -0.0), ("one", 1.0), ("minus_1_5", -1.5), ("18_2", 18.2), ("0_1", 0.1),
        ("pi", 3.141592653589793), ("1e308", 1e308), ("max", 1.7976931348623157e308),
        ("min_normal", 2.2250738585072014e-308), ("min_subnormal", 5e-324), ("inf", float("inf")),
        ("neg_inf", float("-inf")), ("nan", float("nan")), ("nan_negative", fl("fff8000000000000")),
        ("nan_payload", fl("7ff8000000000001")), ("2pow53", 2.0**53)]]
    v += [("complex_" + n, x) for n, x in [
        ("zero", 0j), ("1_2", 1 + 2j), ("neg_zeros", complex(-0.0, -0.0)), ("13_18_2j", 13 + 18.2j),
        ("inf_nan", complex(float("inf"), float("nan"))), ("imag_only", 5j), ("tiny_huge", complex(5e-324, -1e308))]]
    # str = TAG_UNICODE (0x08) followed by a complete bytes encoding of its UTF-8
    v += [("str_" + n, x) for n, x in [
        ("empty", ""), ("a", "a"), ("ab", "ab"), ("abc", "abc"), ("abcd", "abcd"), ("abcde", "abcde"),
        ("2byte_e_acute", "é"), ("3byte_euro", "€"), ("4byte_emoji", "😀"), ("5bytes_mixed", "é€"),
        ("nul", "\x00"), ("newline", "a\nb"), ("crlf_tab", "\r\n\t"), ("quote_backslash", "\"\\'"),
        ("mixed", "héllo wörld 😀 日本"), ("utf8_boundaries", "\x00\x7f\x80\u07ff\u0800\uffff\U00010000\U0010ffff"),
        ("l1_max_255", "a" * 255), ("l4_min_256", "a" * 256), ("l1_255_ending_2byte", "a" * 253 + "é"),
        ("l4_cjk_300", "日本語" * 100), ("l4_emoji_1000", "😀" * 1000), ("l4_70000", "x" * 70000)]]
    v += [("bytes_" + n, x) for n, x in [
        ("empty", b""), ("1", b"\x00"), ("2", b"\xff\x00"), ("3", b"abc"), ("4", b"\x01\x02\x03\x04"),
        ("5", b"hello"), ("255", bytes(range(255))), ("256_all_values", bytes(range(256))),
        ("257", bytes(range(256)) + b"!"), ("newline", b"\n"), ("70000", random.Random(7).randbytes(70000))]]
    # slice = TAG_SLICE + the tuple (start, stop, step); any dumpable value may be a bound
    v += [("slice_" + n, x) for n, x in [
        ("1_2_3", slice(1, 2, 3)), ("none_5_none", slice(None, 5, None)), ("all_none", slice(None)),
        ("str_bytes_float", slice("a", b"b", 1.5)), ("big_ints", slice(2**70, -2**70, -1)),
        ("tuple_bounds", slice((1, 2), (3,), ())), ("nested_slice", slice(slice(1, 2), None, frozenset([1]))),
        ("singletons", slice(Ellipsis, NotImplemented, True))]]
    nested = 0
    for _ in range(50):
        nested = (nested,)
    v += [("tuple_" + n, x) for n, x in [
        ("empty", ()), ("1", (1,)), ("2", (1, "two")), ("3", (1, 2, 3)), ("4", (None, True, False, 4)),
        ("l1_5", (1, 2, 3, 4, 5)), ("l1_255", tuple(range(255))), ("l4_256", tuple(range(256))),
        ("l4_1000", tuple(i * 7919 for i in range(1000))), ("nested_50_deep", nested),
        ("nested_empty", ((), ((),), ())),
        ("mixed", (None, True, 1.5, 2j, "s", b"b", slice(1, 2), frozenset([1]), (), 10**30, ...)),
        ("docstring_example", ("he", 7, "llo", 8, (), 900, None, True, Ellipsis, 18.2, 18.2j + 13,
                               slice(1, 2, 3), frozenset([5, 6, 7]), NotImplemented))]]
    v += [("frozenset_" + n, frozenset(x)) for n, x in [
        ("empty", []), ("one", [1]), ("5_6_7", [5, 6, 7]), ("ints_0_19", range(20)), ("big_ints", [2**64, -1, 10**40]),
        ("strings", ["a", "b", "c", "hello", "world"]), ("bytes", [b"x", b"yy", b""]),
        ("nested", [frozenset([1, 2]), frozenset(), frozenset(["x"])]), ("tuples", [(1, 2), (3, "x"), ()]),
        ("mixed", [None, 1.5, "s", b"b", 7, (1,), Ellipsis]), ("l4_300", (f"k{i}" for i in range(300)))]]
    return v


def tags_of(data):
    """Tag bytes seen while brine.load parses data (spies on brine's recursive _load)."""
    seen, orig = set(), brine._load

    def spy(stream):
        seen.add(stream.getvalue()[stream.tell()])
        return orig(stream)
    brine._load = spy
    try:
        brine.load(data)
    finally:
        brine._load = orig
    return seen


def gen_brine():
    out, tags = [], set()
    for name, value in brine_values():
        data = brine.dump(value)
        if brine.dump(brine.load(data)) == data:    # brine is canonical...
            assert brine.dump(dec(enc(value))) == data, name
        else:   # ...except big frozensets: rebuilt from dump order, the set may iterate differently
            assert type(value) is frozenset and brine.load(data) == value == dec(enc(value)), name
        tags |= tags_of(data)
        out.append({"name": name, "hex": data.hex(), "value": enc(value)})
    # every tag the dumper can produce, and all 208 immediate ints, must be exercised
    assert tags == set(range(0x00, 0x07)) | {0x08} | set(range(0x0a, 0x1c)) | set(range(0x20, 0xf0)), tags
    return write_json("brine.json", out)


# ---------------------------------------------------------------- frames.json
class FakeStream:
    """Collects Channel.send's writes; Channel only needs MAX_IO_CHUNK and write()."""
    MAX_IO_CHUNK = SocketStream.MAX_IO_CHUNK

    def __init__(self):
        self.writes = []

    def write(self, data):
        self.writes.append(bytes(data))


def gen_frames():
    assert FakeStream.MAX_IO_CHUNK == 64000
    text = lambda n: (b"rpyc brine channel frame " * (n // 25 + 1))[:n]  # noqa: E731
    noise = lambda n: random.Random(42).randbytes(n)  # noqa: E731  (os.urandom is not reproducible)
    msg = lambda t, body: bytes([t]) + brine.dump(body)  # noqa: E731
    cases = [  # (name, payload, compress); "split" = Channel used several stream.write calls
        ("empty", b"", True), ("one_byte", b"\x01", True), ("newline_byte", b"\n", True),
        ("3000_at_threshold_raw", text(3000), True), ("3001_compressible", text(3001), True),
        ("3001_incompressible", noise(3001), True), ("64k_compressible", text(65536), True),
        ("64k_incompressible_split", noise(65536), True), ("200k_compressible", text(204800), True),
        ("200k_incompressible_split", noise(204800), True),
        ("nocompress_3001_raw", text(3001), False), ("nocompress_63995_split", noise(63995), False),
        ("msg_getroot_request", msg(1, (0, (consts.HANDLE_GETROOT, (1, ())))), True),
        ("msg_ping_request", msg(1, (3, (consts.HANDLE_PING, (1, ("abcdefghijklmnopqrstuvwxyz" * 20,))))), True),
        ("msg_reply_none", msg(2, (0, (1, None))), True),
        ("msg_reply_big_str_compressed", msg(2, (5, (1, "x" * 5000))), True),
        ("msg_exception_stop_iteration", msg(3, (9, 1)), True),
    ]
    out = []
    for name, payload, compress in cases:
        stream = FakeStream()
        Channel(stream, compress=compress).send(payload)
        frame = b"".join(stream.writes)
        # decode it back like Channel.recv: !LB header (length, compressed), body, b"\n"
        length, flag = struct.unpack("!LB", frame[:5])
        assert len(frame) == 5 + length + 1 and frame[-1:] == b"\n"
        assert (zlib.decompress(frame[5:-1]) if flag else frame[5:-1]) == payload
        assert flag == (compress and len(payload) > 3000)
        assert ("split" in name) == (len(stream.writes) > 1), name
        out.append({"name": name, "payload_hex": payload.hex(), "frame_hex": frame.hex(), "compressed": bool(flag)})
    return write_json("frames.json", out)


# ---------------------------------------------------------------- messages.json
REF_KINDS = {consts.LABEL_LOCAL_REF: "local_ref", consts.LABEL_REMOTE_REF: "remote_ref"}


def enc_box(b):
    label, val = b
    if label == consts.LABEL_VALUE:
        return ["value", enc(val)]
    if label == consts.LABEL_TUPLE:
        return ["tuple", [enc_box(x) for x in val]]
    name, tid, oid = val
    assert type(name) is str and type(tid) is int and type(oid) is int
    return [REF_KINDS[label], name, str(tid), str(oid)]


def dec_box(b):
    if b[0] == "value":
        return (consts.LABEL_VALUE, dec(b[1]))
    if b[0] == "tuple":
        return (consts.LABEL_TUPLE, tuple(dec_box(x) for x in b[1]))
    return ({v: k for k, v in REF_KINDS.items()}[b[0]], (b[1], int(b[2]), int(b[3])))


def enc_msg(payload):
    """Payload -> (short kind for the vector name, MSG JSON)."""
    seq, args = brine.load(payload[1:])
    if payload[0] == consts.MSG_REQUEST:   # payload[0] is a raw byte (struct "!B"), not a brine int
        return "req_" + HANDLERS[args[0]], {"type": "request", "seq": seq, "handler": args[0],
                                            "args": enc_box(args[1])}
    if payload[0] == consts.MSG_REPLY:
        return "reply", {"type": "reply", "seq": seq, "value": enc_box(args)}
    assert payload[0] == consts.MSG_EXCEPTION   # the vinegar tuple itself, NOT boxed
    if type(args) is int:
        assert args == consts.EXC_STOP_ITERATION
        return "exc_stopiteration", {"type": "exception", "seq": seq, "exc": ["stop_iteration"]}
    (mod, name), eargs, attrs, tb = args
    return "exc_" + name.lower(), {"type": "exception", "seq": seq, "exc": {
        "module": mod, "name": name, "args": [enc(a) for a in eargs],
        "attrs": [[k, enc(a)] for k, a in attrs], "traceback": tb}}


def dec_msg(m):
    """MSG JSON -> payload bytes: proves the JSON holds everything."""
    if m["type"] == "request":
        body = (m["handler"], dec_box(m["args"]))
    elif m["type"] == "reply":
        body = dec_box(m["value"])
    elif m["exc"] == ["stop_iteration"]:
        body = consts.EXC_STOP_ITERATION
    else:
        e = m["exc"]
        body = ((e["module"], e["name"]), tuple(dec(a) for a in e["args"]),
                tuple((k, dec(a)) for k, a in e["attrs"]), e["traceback"])
    return bytes([{"request": 1, "reply": 2, "exception": 3}[m["type"]]]) + brine.dump((m["seq"], body))


ADDR_RE = re.compile(r" at 0x[0-9a-fA-F]+")


def redact_tb(tb):
    """Tracebacks hold paths and line numbers: keep only the final 'Type: message' line."""
    if tb == "<traceback denied>":
        return tb
    last = [ln for ln in tb.splitlines() if ln.strip()][-1]
    return 'Traceback (most recent call last):\n  File "<redacted>", line 0, in <redacted>\n' + last + "\n"


def find_id_packs(x, found):
    """id packs are (name, id(type), id(obj)) triples: boxed as refs, or plain values (INSPECT)."""
    if type(x) is tuple:
        if len(x) == 3 and type(x[0]) is str and type(x[1]) is int and type(x[2]) is int and x[1] > 2**20:
            for i in x[1:]:
                if i != 0 and i not in found:   # obj id 0 means "this is a class"
                    found[i] = ID_BASE + 16 * len(found)
        for y in x:
            find_id_packs(y, found)


def substitute(x, ids):
    """Replace captured memory addresses (ids, and 'at 0x...' inside reprs) with stable ones."""
    t = type(x)
    if t is int:
        return ids.get(x, x)
    if t is str:
        return ADDR_RE.sub(" at 0x0", x)
    if t in (tuple, frozenset):
        return t(substitute(y, ids) for y in x)
    if t is slice:
        return slice(*substitute((x.start, x.stop, x.step), ids))
    return x


def same_shape(a, b):
    if type(a) is not type(b):
        return False
    if type(a) in (tuple, frozenset):
        return len(a) == len(b) and all(same_shape(x, y) for x, y in zip(a, b))
    if type(a) is slice:
        return same_shape((a.start, a.stop, a.step), (b.start, b.stop, b.step))
    return type(a) in (int, str) or a == b or a != a   # a != a: NaN


def clean_payload(payload, ids):
    """Redact tracebacks, substitute ids, re-dump; asserts canonicality and unchanged shape."""
    body = brine.load(payload[1:])
    assert brine.dump(body) == payload[1:], "re-dump of the loaded value must equal the captured bytes"
    if payload[0] == consts.MSG_EXCEPTION and type(body[1]) is tuple:
        seq, (cls, args, attrs, tb) = body
        body = (seq, (cls, args, attrs, redact_tb(tb)))
    new = substitute(body, ids)
    assert same_shape(body, new)
    return payload[:1] + brine.dump(new)


class Capture:
    """Records every Channel payload of both peers, in wire order.

    The peers run in two threads, so the order of their sends could race (an async
    HANDLE_DEL sent after a reply, replies crossing requests). To make the order
    reproducible a side may only send while its peer is idle: blocked in
    Channel.poll with nothing unread. When both want to send, the client goes first."""

    def __init__(self):
        self.cond = threading.Condition()
        self.records = []            # [side, step, payload]
        self.sides = {}              # id(channel) -> side, fixed at first use (by thread)
        self.polling, self.sending = {"client": False, "server": False}, {"client": False, "server": False}
        self.sent, self.recvd = {"client": 0, "server": 0}, {"client": 0, "server": 0}
        self.step, self.problems = "connect", []

    def side(self, chan):
        me = "client" if threading.current_thread() is threading.main_thread() else "server"
        return self.sides.setdefault(id(chan), me)

    def idle(self, side):
        peer = "server" if side == "client" else "client"
        return self.polling[side] and self.sent[peer] == self.recvd[side]

    def install(self):
        cap, send, poll, recv = self, Channel.send, Channel.poll, Channel.recv

        def rec_send(chan, data):
            side = cap.side(chan)
            peer = "server" if side == "client" else "client"
            with cap.cond:
                cap.sending[side] = True
                cap.cond.notify_all()
                # a closed channel cannot send (and its peer may never poll again): don't wait
                if not cap.cond.wait_for(lambda: chan.closed or cap.idle(peer)
                                         or (side == "client" and cap.sending[peer]), 20):
                    cap.problems.append(f"{side} send timed out in step {cap.step}")
                cap.sending[side] = False
                entry = [side, cap.step, bytes(data)]
                cap.records.append(entry)
                cap.sent[side] += 1
                cap.cond.notify_all()
            try:
                send(chan, data)
            except BaseException:   # e.g. the reply to HANDLE_CLOSE: never reached the wire
                with cap.cond:
                    cap.records = [r for r in cap.records if r is not entry]
                    cap.sent[side] -= 1
                    cap.cond.notify_all()
                raise

        def rec_poll(chan, timeout):
            side = cap.side(chan)
            with cap.cond:
                cap.polling[side] = True
                cap.cond.notify_all()
            try:
                return poll(chan, timeout)
            finally:
                with cap.cond:
                    cap.polling[side] = False

        def rec_recv(chan):
            data = recv(chan)
            with cap.cond:
                cap.recvd[cap.side(chan)] += 1
                cap.cond.notify_all()
            return data

        Channel.send, Channel.poll, Channel.recv = rec_send, rec_poll, rec_recv
        return lambda: setattr(Channel, "send", send) or setattr(Channel, "poll", poll) or setattr(Channel, "recv", recv)


def run_session(cap):
    """A classic session: client = rpyc.classic.connect (ClassicService), server = rpyc.SlaveService."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def server():
        sock = listener.accept()[0]
        listener.close()
        rpyc.utils.factory.connect_stream(SocketStream(sock), rpyc.SlaveService).serve_all()

    thread = threading.Thread(target=server, daemon=True)
    thread.start()
    conn = rpyc.classic.connect("127.0.0.1", listener.getsockname()[1])

    def step(name, fn, raises=False):
        cap.step = name
        try:
            fn()
        except Exception:
            assert raises, name
            return
        assert not raises, name

    def ctx():
        with conn.modules.contextlib.nullcontext(5) as v:   # __enter__ is a CALLATTR, __exit__ a CTXEXIT
            assert v == 5

    def del_count():
        conn.execute("L = [9]")
        a, b = conn.eval("L"), conn.eval("L")   # the second unbox hits the proxy cache: refcount 2
        assert a is b
        del a, b                                # -> HANDLE_DEL with count 2

    def attrs():
        ns = conn.modules.types.SimpleNamespace()
        ns.a = 1
        assert ns.a == 1
        del ns.a

    def netref_ops():
        r = conn.builtins.range(10)             # a netref whose hash/repr do not depend on addresses
        assert (len(r), repr(r), str(r)) == (10, "range(0, 10)", "range(0, 10)")
        assert hash(r) == hash(range(10)) and "count" in dir(r)
        assert r == conn.builtins.range(10) and r != 5 and r.index(3) == 3

    step("sys_version", lambda: conn.modules.sys.version)
    step("list_callback", lambda: repr(conn.builtins.list([1, 2, 3])))   # server iterates our list
    step("eval", lambda: conn.eval("1+1"))
    step("execute", lambda: conn.execute("x = 5"))
    step("zerodiv", lambda: conn.eval("1/0"), raises=True)
    step("oserror", lambda: conn.execute("raise OSError(2, 'nope', 'file')"), raises=True)
    step("keyerror", lambda: conn.eval("{}['k']"), raises=True)
    step("custom_exc", lambda: conn.execute("class MyErr(Exception):\n    code = 42\nraise MyErr('boom', [1])"),
         raises=True)
    step("missing_attr", lambda: conn.modules.sys.no_such_attr, raises=True)
    step("generator", lambda: list(conn.eval("(i * i for i in range(3))")))
    step("ping", conn.ping)
    step("kwargs", lambda: conn.builtins.int("ff", base=16))
    step("netref_ops", netref_ops)
    step("os_path_join", lambda: conn.modules.os.path.join("a", "b"))
    step("obtain_pickle", lambda: rpyc.classic.obtain(conn.eval("[1, 2, 3]")))
    step("del_count", del_count)
    step("buffiter", lambda: list(rpyc.buffiter(conn.builtins.range(25))))
    step("attrs", attrs)
    step("ctxexit", ctx)
    step("instancecheck", lambda: isinstance(conn.builtins.range(3), conn.builtins.object))
    step("close", conn.close)
    thread.join(10)
    assert not thread.is_alive() and not cap.problems, cap.problems


def capture_messages():
    gc.disable()        # cyclic GC at random moments would move HANDLE_DELs around
    # Keep every object that gets an id_pack alive so no address is reused by another
    # object: then "same id" means "same object" and the substitution below is stable.
    keep, get_id_pack = [], protocol.get_id_pack
    protocol.get_id_pack = lambda obj: keep.append(obj) or get_id_pack(obj)
    cap = Capture()
    uninstall = cap.install()
    try:
        run_session(cap)
    finally:
        uninstall()
        protocol.get_id_pack = get_id_pack
        gc.enable()
    ids = {}
    for _, _, payload in cap.records:
        find_id_packs(brine.load(payload[1:]), ids)
    out = []
    for n, (side, step, payload) in enumerate(cap.records):
        data = clean_payload(payload, ids)
        out.append((f"cap{n:03d}_{step}_{'c2s' if side == 'client' else 's2c'}_{enc_msg(data)[0]}", data))
    return out


def hand_exceptions():
    """vinegar.dump output for several exception shapes (the MSG_EXCEPTION payload)."""
    class AppError(Exception):
        code = 42                     # dumpable attribute: sent as is
        detail = {"k": [1]}           # not dumpable: sent as repr()
    AppError.__module__, AppError.__qualname__ = "mylib.errors", "AppError"   # as if imported

    def raise_(e):
        raise e

    cases = [
        ("stop_iteration", lambda: raise_(StopIteration()), True),
        ("zerodivision", lambda: 1 / 0, True),
        ("keyerror_tuple_arg", lambda: {}[("a", 1)], True),
        ("oserror_attrs", lambda: raise_(OSError(2, "nope", "file")), True),   # really FileNotFoundError
        ("custom_module_class", lambda: raise_(AppError("bad thing", 7)), True),
        ("nondumpable_args_repr", lambda: raise_(ValueError([1, 2], {"a": 1}, 3)), True),
        ("denied_tb_and_version", lambda: raise_(RuntimeError("quiet")), False),
    ]
    out = []
    for i, (name, fn, include) in enumerate(cases):
        try:
            fn()
        except BaseException:
            x = vinegar.dump(*sys.exc_info(), include_local_traceback=include, include_local_version=include)
        if type(x) is tuple:
            (mod, cls), args, attrs, tbtext = x
            assert type(mod) is str and type(args) is tuple and all(len(a) == 2 for a in attrs)
        out.append(("hand_exc_" + name, clean_payload(bytes([3]) + brine.dump((100 + i, x)), {})))
    return out


def hand_messages():
    """What a classic py3 session never sends (OLDSLICING: py2 __getslice__ only), plus
    edge cases: seq 0 / huge seqs, nested boxing, refs in replies, every value type."""
    T_LIST, O_LIST, T_DICT, O_DICT, T_OBJ = (ID_BASE + 0xF000 + 16 * i for i in range(5))
    lst = (consts.LABEL_LOCAL_REF, ("builtins.list", T_LIST, O_LIST))
    dct = (consts.LABEL_REMOTE_REF, ("builtins.dict", T_DICT, O_DICT))
    val = lambda x: (consts.LABEL_VALUE, x)  # noqa: E731
    tup = lambda *xs: (consts.LABEL_TUPLE, xs)  # noqa: E731
    req = lambda seq, h, boxed: bytes([1]) + brine.dump((seq, (h, boxed)))  # noqa: E731
    rep = lambda seq, boxed: bytes([2]) + brine.dump((seq, boxed))  # noqa: E731
    return [
        ("hand_req_oldslicing", req(42, consts.HANDLE_OLDSLICING, tup(
            lst, val("__getitem__"), val("__getslice__"), val(1), val(3), val(())))),
        ("hand_req_seq0_ping", req(0, consts.HANDLE_PING, val(("abc",)))),
        ("hand_req_seq_1e6_getroot", req(10**6, consts.HANDLE_GETROOT, val(()))),
        ("hand_req_seq_2pow40_hash", req(2**40, consts.HANDLE_HASH, tup(lst))),
        ("hand_reply_seq_2pow40", rep(2**40, val(-123456789))),
        ("hand_reply_seq_i64_max", rep(2**63 - 1, val(None))),   # JSON seq must still fit an i64
        ("hand_req_class_ref_instancecheck", req(7, consts.HANDLE_INSTANCECHECK, tup(
            (consts.LABEL_LOCAL_REF, ("builtins.object", T_OBJ, 0)), val(("builtins.list", T_LIST, O_LIST))))),
        ("hand_req_call_kwargs", req(12, consts.HANDLE_CALL, tup(
            lst, val((1, 2)), val((("key", "v"), ("reverse", True)))))),
        ("hand_reply_remote_ref", rep(8, dct)),
        ("hand_reply_nested_tuple_boxing", rep(9, tup(val(1), tup(dct, val("x")), lst, val((1, (2, 3)))))),
        ("hand_reply_frozenset", rep(10, val(frozenset(["a", "b", "c"])))),
        ("hand_reply_all_types", rep(11, val((None, True, False, NotImplemented, Ellipsis, 10**300, -0.0, 1j,
                                               "é", b"\x00", slice(None, 1, None), frozenset([1]), ())))),
    ] + hand_exceptions()


def gen_messages():
    out = []
    for name, payload in capture_messages() + hand_messages():
        kind, m = enc_msg(payload)
        assert dec_msg(m) == payload, name
        out.append({"name": name, "hex": payload.hex(), "message": m})
    reqs = [(m["name"], m["message"]["handler"]) for m in out if m["message"]["type"] == "request"]
    cap = {h for n, h in reqs if n.startswith("cap")}
    hand = {h for n, h in reqs if n.startswith("hand_")}
    assert cap | hand == set(range(1, 21)), set(range(1, 21)) - cap - hand
    write_json("messages.json", out)
    return out, sorted(cap), sorted(hand - cap)


def main():
    nb, nf = gen_brine(), gen_frames()
    msgs, cap, hand_only = gen_messages()
    ncap = sum(m["name"].startswith("cap") for m in msgs)
    print(f"brine.json:    {nb} vectors")
    print(f"frames.json:   {nf} vectors")
    print(f"messages.json: {len(msgs)} vectors ({ncap} captured, {len(msgs) - ncap} hand-made)")
    print(f"handlers in captured traffic: {cap}; only hand-made: {hand_only}")
    print(f"total: {nb + nf + len(msgs)} vectors")


if __name__ == "__main__":
    main()
