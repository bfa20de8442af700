"""Caffe Python layers (python_param { module: "layers.<name>" }) and the plain numpy
functions they wrap, which tests and tools import without building a net."""
