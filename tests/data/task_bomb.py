# Code a client sends to a classic server to use up its tasks: threads
# until none can be started, then a process. `pin` keeps the session on its
# thread (its thread's Python state is its own); `release.set()` ends the
# threads. Shared by tests/daemon/test_sandbox.py and tests/system.
import os, threading
pin = threading.local()
pin.mine = True
threading.stack_size(256 * 1024)
release = threading.Event()
held, thread_error, fork_error = [], None, None
while len(held) < 100000:
    thread = threading.Thread(target=release.wait)
    try:
        thread.start()
    except RuntimeError as error:
        thread_error = repr(error)
        break
    held.append(thread)
try:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
except OSError as error:
    fork_error = repr(error)
