"""pytest setup: quiet Caffe's glog output (set before any test imports caffe), and
--caffe-gpu N, which makes the tests' nets in GPU mode on GPU N (make gpu-check runs the
Python layers' gradient checks so)."""
import os

os.environ.setdefault("GLOG_minloglevel", "2")


def pytest_addoption(parser):
    parser.addoption("--caffe-gpu", type=int, default=None, metavar="N",
                     help="run Caffe in GPU mode on GPU N (needs the GPU build and a GPU)")


def pytest_configure(config):
    gpu = config.getoption("--caffe-gpu")
    if gpu is not None:
        from solver.devices import use_device
        use_device(gpu)
