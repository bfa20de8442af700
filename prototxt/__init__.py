"""Network generators (caffe.NetSpec): one make_<variant>(options, phase) per network; the
generated .prototxt files are committed beside the script that writes them."""
