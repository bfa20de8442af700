"""Benchmarks: Caffe's speed against PyTorch's twin and the machine's limit; the GPU check."""
