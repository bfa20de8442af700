"""Timing shared by the benchmarks' servers, Caffe's (.venv) and PyTorch's (.venv-bench): plain
Python, so that both interpreters import it."""
import time


def timed(function, times):
    """Seconds of each of `times` calls."""
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return seconds
