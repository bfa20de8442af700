"""A tiny generated net for smoke runs of the toolchain (`make smoke`, and the tests).

DummyData images (Gaussian noise, refilled every iteration) and a constant target go through
conv -> BatchNorm -> Scale -> ReLU -> pool -> [optional Python layer] -> fc -> EuclideanLoss,
so training only has to learn the target through the biases: the loss must fall within a few
dozen iterations, which shows that forward, backward and the solver work.
"""
import caffe
from caffe import layers as L, params as P


def conv_bn_relu(spec, name, bottom, num_output, kernel_size):
    """Convolution, BatchNorm and Scale (the pair Caffe needs for learnable BN), ReLU in place."""
    spec[name] = L.Convolution(bottom, num_output=num_output, kernel_size=kernel_size,
                               weight_filler=dict(type="msra"), bias_term=False)
    spec[f"{name}_bn"] = L.BatchNorm(spec[name], in_place=True)
    spec[f"{name}_scale"] = L.Scale(spec[name], bias_term=True, in_place=True)
    spec[f"{name}_relu"] = L.ReLU(spec[name], in_place=True)
    return spec[name]


def make_smoke_net(batch=8, image_size=16, outputs=4, target=0.5, python_layer=None):
    """NetSpec of the smoke net; python_layer=(module, layer) inserts a Python layer."""
    spec = caffe.NetSpec()
    spec.data = L.DummyData(shape=dict(dim=[batch, 3, image_size, image_size]),
                            data_filler=dict(type="gaussian", std=1.0))
    spec.target = L.DummyData(shape=dict(dim=[batch, outputs]),
                              data_filler=dict(type="constant", value=target))
    features = conv_bn_relu(spec, "conv1", spec.data, num_output=8, kernel_size=3)
    spec.pool1 = L.Pooling(features, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    features = spec.pool1
    if python_layer is not None:
        module, layer = python_layer
        spec.python1 = L.Python(features, python_param=dict(module=module, layer=layer))
        features = spec.python1
    spec.fc1 = L.InnerProduct(features, num_output=outputs, weight_filler=dict(type="xavier"))
    spec.loss = L.EuclideanLoss(spec.fc1, spec.target)
    return spec
