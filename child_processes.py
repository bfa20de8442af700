"""Child processes that end with the process that started them: a killed command (make_lmdb,
training) leaves no worker or `caffe train` running on, writing into its outputs."""
import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1   # prctl option: the signal a process gets when its parent dies


def die_with_parent(parent=None):
    """Have Linux kill this process when its parent dies. Call it in the child: as Popen's
    preexec_fn (before the child executes), or first thing in a worker process with the
    parent's pid, which also covers a parent that died before the call."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent is not None and os.getppid() != parent:
        os._exit(1)
