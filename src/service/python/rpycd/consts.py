"""The numbers of rpyc 6.0.2's protocol that the object space uses
(rpyc/core/consts.py), and the version it speaks."""
import sys

RPYC_VERSION = "6.0.2"

# handler codes, as rpyc/core/consts.py numbers them
HANDLE_PING = 1
HANDLE_GETROOT = 3
HANDLE_GETATTR = 4
HANDLE_DELATTR = 5
HANDLE_SETATTR = 6
HANDLE_CALL = 7
HANDLE_CALLATTR = 8
HANDLE_REPR = 9
HANDLE_STR = 10
HANDLE_CMP = 11
HANDLE_HASH = 12
HANDLE_DIR = 13
HANDLE_PICKLE = 14
HANDLE_DEL = 15
HANDLE_INSPECT = 16
HANDLE_BUFFITER = 17
HANDLE_OLDSLICING = 18
HANDLE_CTXEXIT = 19
HANDLE_INSTANCECHECK = 20

EXC_STOP_ITERATION = 1
MAXINT = sys.maxsize
