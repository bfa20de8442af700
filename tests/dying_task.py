"""A worker's task for tests/test_make_lmdb.py, in a module of its own so that the worker
processes (started fresh) import nothing else."""
import os


def square_or_die(task):
    """task squared; task 3 kills its process (as the OOM killer or a crash in a decoder's C
    code would)."""
    if task == 3:
        os._exit(9)
    return task * task
