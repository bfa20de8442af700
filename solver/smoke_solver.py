"""Solver of the smoke run, built as a typed caffe_pb2.SolverParameter."""
from caffe.proto import caffe_pb2


def make_smoke_solver(net_path, snapshot_prefix, max_iter=40, base_lr=0.003, seed=1):
    solver = caffe_pb2.SolverParameter()
    solver.net = str(net_path)
    solver.type = "SGD"
    solver.base_lr = base_lr
    solver.momentum = 0.9
    solver.weight_decay = 0.0005
    solver.lr_policy = "fixed"
    solver.max_iter = max_iter
    solver.display = 5
    solver.snapshot = max_iter
    solver.snapshot_prefix = str(snapshot_prefix)
    solver.random_seed = seed
    solver.solver_mode = caffe_pb2.SolverParameter.CPU
    return solver
