"""obtain/deliver, upload/download, teleport_function, redirected_stdio."""

import datetime
import hashlib
import os
from pathlib import Path

import pytest
import rpyc

from conftest import CLIENT_MAJOR


def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                return h.hexdigest()
            h.update(block)


@pytest.fixture
def remote_sha(conn):
    conn.execute(
        "import hashlib\n"
        "def remote_sha256(path):\n"
        "    h = hashlib.sha256()\n"
        "    with open(path, 'rb') as f:\n"
        "        for block in iter(lambda: f.read(1 << 20), b''):\n"
        "            h.update(block)\n"
        "    return h.hexdigest()\n"
    )
    return conn.namespace["remote_sha256"]


def tree_hashes(root):
    root = Path(root)
    result = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        result[rel] = "<dir>" if p.is_dir() else sha256_file(p)
    return result


def test_obtain(conn):
    remote = conn.eval("{'a': [1, 2], 'b': {3, 4}, 'c': ('x', b'y'), 'd': {'nested': [None]}}")
    local = rpyc.classic.obtain(remote)
    assert not isinstance(local, rpyc.BaseNetref)
    assert type(local) is dict
    assert local == {"a": [1, 2], "b": {3, 4}, "c": ("x", b"y"), "d": {"nested": [None]}}
    # A copy: changing it does not change the remote object.
    local["a"].append(3)
    assert list(remote["a"]) == [1, 2]
    when = rpyc.classic.obtain(conn.modules.datetime.date(2024, 2, 29))
    assert when == datetime.date(2024, 2, 29)


def test_obtain_unpicklable_raises(conn):
    with pytest.raises(Exception) as info:
        rpyc.classic.obtain(conn.eval("lambda: 1"))
    assert "pickle" in str(info.value).lower() or "lambda" in str(info.value)


def test_deliver(conn):
    local = {"x": [1, 2, 3], "when": datetime.date(2000, 1, 2)}
    remote = rpyc.classic.deliver(conn, local)
    assert isinstance(remote, rpyc.BaseNetref)
    assert conn.builtins.type(remote) == conn.builtins.dict
    assert list(remote["x"]) == [1, 2, 3]
    assert remote["when"].year == 2000
    # A copy: the remote object is independent of ours.
    remote["x"].append(4)
    assert local["x"] == [1, 2, 3]
    assert conn.builtins.len(remote["x"]) == 4
    # It lives on the server: the server can compute with it.
    conn.namespace["delivered"] = remote
    assert conn.eval("sum(delivered['x'])") == 10


def make_file(path, size):
    with open(path, "wb") as f:
        # Half random (incompressible), half repetitive (compressible).
        half = size // 2
        f.write(os.urandom(half))
        rest = size - half
        f.write(b"rpycd-" * (rest // 6) + b"x" * (rest % 6))
    assert path.stat().st_size == size
    return sha256_file(path)


def round_trip(conn, remote_sha, tmp_path, size, **kwargs):
    src = tmp_path / "src.bin"
    remote_dir = tmp_path / "remote"
    remote_path = str(remote_dir / "file.bin")
    back = tmp_path / "back.bin"
    try:
        local_hash = make_file(src, size)
        conn.modules.os.makedirs(str(remote_dir))
        rpyc.classic.upload(conn, str(src), remote_path, **kwargs)
        assert conn.modules.os.path.getsize(remote_path) == size
        assert remote_sha(remote_path) == local_hash

        rpyc.classic.download(conn, remote_path, str(back), **kwargs)
        assert back.stat().st_size == size
        assert sha256_file(back) == local_hash
    finally:
        # pytest keeps the tmp dirs of the last runs: do not leave 150 MB there.
        for p in (src, Path(remote_path), back):
            p.unlink(missing_ok=True)


def test_upload_download_50mb_file(conn, remote_sha, tmp_path):
    # 1 MiB chunks: with rpyc's default 64000-byte chunks every chunk waits
    # ~40 ms for a delayed ACK (the stock client does not set TCP_NODELAY),
    # which would make 50 MB take over a minute each way.
    round_trip(conn, remote_sha, tmp_path, 50 * 1024 * 1024, chunk_size=1 << 20)


def test_upload_download_default_chunks(conn, remote_sha, tmp_path):
    round_trip(conn, remote_sha, tmp_path, 3 * 1024 * 1024 + 12345)


def test_upload_download_directory_tree(conn, remote_sha, tmp_path):
    src = tmp_path / "tree"
    (src / "a" / "b" / "c").mkdir(parents=True)
    (src / "empty_dir").mkdir()
    (src / "top.txt").write_text("top level\n")
    (src / "a" / "data.bin").write_bytes(os.urandom(100_000))
    (src / "a" / "b" / "empty.txt").write_bytes(b"")
    (src / "a" / "b" / "c" / "deep.txt").write_text("deep " * 1000)
    (src / "a" / "b" / "unicode-é.txt").write_text("héllo wörld")
    expected = tree_hashes(src)

    remote_dir = str(tmp_path / "remote-tree")
    rpyc.classic.upload(conn, str(src), remote_dir)
    # Check on the server side.
    assert conn.modules.os.path.isdir(remote_dir + "/empty_dir")
    assert remote_sha(remote_dir + "/a/data.bin") == expected["a/data.bin"]
    remote_listing = sorted(conn.modules.os.listdir(remote_dir))
    assert remote_listing == ["a", "empty_dir", "top.txt"]

    back = tmp_path / "back-tree"
    rpyc.classic.download(conn, remote_dir, str(back))
    assert tree_hashes(back) == expected


def test_upload_filter_and_invalid(conn, tmp_path):
    src = tmp_path / "filtered"
    src.mkdir()
    (src / "keep.txt").write_text("keep")
    (src / "skip.log").write_text("skip")
    dst = str(tmp_path / "filtered-remote")
    rpyc.classic.upload(conn, str(src), dst, filter=lambda name: name.endswith(".txt"))
    assert sorted(conn.modules.os.listdir(dst)) == ["keep.txt"]
    with pytest.raises(ValueError):
        rpyc.classic.upload(conn, str(tmp_path / "does-not-exist"), dst + "/x")
    with pytest.raises(ValueError):
        rpyc.classic.download(conn, str(tmp_path / "nor-this"), str(tmp_path / "y"))


def remote_pid_and_product(x, y=2):
    import os
    return (os.getpid(), x * y)


def with_closure(n):
    def add(k):
        return k + n
    return [add(i) for i in range(3)]


# rpyc 4 exports a function as 4 fields, rpyc 5 and 6 import 5: the
# server's rpyc (6 here) cannot read what a 4.x client teleports, with
# rpyc's own 5.x and 6.x servers as with ours
needs_rpyc5_export = pytest.mark.skipif(
    CLIENT_MAJOR < 5, reason="rpyc 4's teleport export is not what the server's rpyc 6 imports")


@needs_rpyc5_export
def test_teleport_function(conn, server):
    f = rpyc.classic.teleport_function(conn, remote_pid_and_product)
    pid, product = f(21)
    assert product == 42
    assert pid == server.proc.pid
    assert pid != os.getpid()
    assert f(3, y=5) == (pid, 15)
    # By default the function is also defined in the connection's namespace.
    assert conn.eval("remote_pid_and_product(2, 3)") == (pid, 6)
    g = conn.teleport(with_closure)
    assert list(g(10)) == [10, 11, 12]


@needs_rpyc5_export
def test_teleport_function_without_def(conn):
    def lonely(a):
        return a * 3
    f = rpyc.classic.teleport_function(conn, lonely, def_=False)
    assert f(4) == 12
    assert "lonely" not in conn.namespace


def test_redirected_stdio(conn, capsys):
    orig_stdout = conn.modules.sys.stdout
    with rpyc.classic.redirected_stdio(conn):
        conn.execute("print('hello from the server')")
        conn.execute("import sys\nsys.stderr.write('server stderr line\\n')")
        conn.modules.sys.stdout.write("via netref\n")
    captured = capsys.readouterr()
    assert "hello from the server\n" in captured.out
    assert "via netref\n" in captured.out
    assert "server stderr line\n" in captured.err
    # Restored afterwards: remote prints no longer reach us.
    assert conn.modules.sys.stdout == orig_stdout
    conn.execute("print('not for the client')")
    captured = capsys.readouterr()
    assert "not for the client" not in captured.out


@pytest.mark.parametrize("kind", ["random", "text"])
def test_bulk_bytes_values_both_ways(conn, kind):
    # Byte strings of 1 MiB and more are written from the Python object and
    # read into the bytes object they become; 32 MiB and more ask for huge
    # pages. Downloads are 40 MB; uploads stay small, since rpyc 6.0.2's
    # client writes a frame in quadratic time.
    if kind == "random":
        source = "__import__('os').urandom(40_000_000)"
    else:
        source = "b''.join(b'%d,%d,row\\n' % (i, i * i) for i in range(2_500_000))[:40_000_000]"
    conn.execute(f"bulk_value = {source}")
    try:
        remote_digest = conn.eval("__import__('hashlib').sha256(bulk_value).hexdigest()")
        local = conn.eval("bulk_value")
        assert type(local) is bytes and len(local) == 40_000_000
        assert hashlib.sha256(local).hexdigest() == remote_digest
        upload = local[: 3 << 20]
        seen = conn.eval("lambda b: (type(b).__name__, len(b), __import__('hashlib').sha256(b).hexdigest())")(upload)
        assert tuple(seen) == ("bytes", len(upload), hashlib.sha256(upload).hexdigest())
    finally:
        conn.execute("del bulk_value")
