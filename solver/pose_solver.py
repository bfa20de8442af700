"""The paper's SGD solver (section 4) as a typed caffe_pb2.SolverParameter.

Section 4: SGD, batch 128, base_lr 0.01 halved every 4 epochs, 28 epochs, momentum 0.9,
weight decay 0.001; lambda_2D = 0.1, then 0.01 after epoch 16. The switch happens inside the
net (layers/loss_schedule.py counts the iterations in a blob that snapshots keep), so one
solver runs the whole schedule and a resume from any snapshot continues it. Iterations come
from solver/schedule.py; solver/run_folder.py writes the solver into a run folder.
"""
import math

from caffe.proto import caffe_pb2

from solver.schedule import schedule


def make_solver(cfg, train_net, snapshot_prefix, train_size, test_net=None, test_size=None):
    """caffe_pb2.SolverParameter of the whole schedule; paths are written as given."""
    plan = schedule(cfg, train_size)
    solver = caffe_pb2.SolverParameter()
    solver.train_net = str(train_net)
    solver.type = "SGD"
    solver.base_lr = cfg.base_lr
    solver.lr_policy = "step"
    solver.gamma = cfg.lr_gamma
    solver.stepsize = plan.lr_step
    solver.momentum = cfg.momentum
    solver.weight_decay = cfg.weight_decay
    solver.max_iter = plan.max_iter
    solver.snapshot = plan.snapshot
    solver.snapshot_prefix = str(snapshot_prefix)
    solver.snapshot_after_train = True
    solver.display = cfg.display_iters
    solver.random_seed = cfg.random_seed
    solver.solver_mode = caffe_pb2.SolverParameter.CPU
    if test_net is not None:
        if not test_size:
            raise ValueError("a test net needs test_size")
        solver.test_net.append(str(test_net))
        tested = min(test_size, cfg.test_images) if cfg.test_images else test_size
        solver.test_iter.append(math.ceil(tested / cfg.batch_size))
        solver.test_interval = plan.test_interval
        solver.test_initialization = False
    return solver


def timing_solver(cfg, train_net):
    """A solver for timing steps (benchmarks): the paper's SGD settings at a fixed learning
    rate, no display, no snapshots, no test net; it never reaches max_iter."""
    return caffe_pb2.SolverParameter(
        train_net=str(train_net), type="SGD", base_lr=cfg.base_lr, momentum=cfg.momentum,
        weight_decay=cfg.weight_decay, lr_policy="fixed", max_iter=10 ** 6, display=0,
        snapshot_after_train=False, solver_mode=caffe_pb2.SolverParameter.CPU)
