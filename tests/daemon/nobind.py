"""Runs a command with bind() and listen() failing with EPERM, as the
packaged units make them fail (`SystemCallFilter=~bind listen`), so the
daemon tests can show that a daemon given its sockets needs neither.

    python nobind.py PROGRAM [ARG...]

A seccomp filter installed with ctypes: nothing to build or install. It is
inherited across exec, so under `systemd-socket-activate -l ADDR python
nobind.py rpyc-classic` the activator binds and the daemon cannot.
"""

import ctypes
import errno
import os
import platform
import struct
import sys

# (AUDIT_ARCH_*, __NR_bind, __NR_listen)
ARCHES = {
    "x86_64": (0xC000003E, 49, 50),
    "aarch64": (0xC00000B7, 200, 201),
}

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_RET_K = 0x06


def supported():
    return platform.machine() in ARCHES


def install():
    arch, nr_bind, nr_listen = ARCHES[platform.machine()]
    program = [
        (BPF_LD_W_ABS, 0, 0, 4),                # seccomp_data.arch
        (BPF_JEQ_K, 0, 3, arch),                # another ABI: allow
        (BPF_LD_W_ABS, 0, 0, 0),                # seccomp_data.nr
        (BPF_JEQ_K, 2, 0, nr_bind),
        (BPF_JEQ_K, 1, 0, nr_listen),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),
    ]
    code = b"".join(struct.pack("=HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(code, len(code))

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Fprog(len(program), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                           ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")


if __name__ == "__main__":
    install()
    os.execv(sys.argv[1], sys.argv[1:])
