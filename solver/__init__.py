"""Solver generators: caffe_pb2.SolverParameter built from the configuration."""
