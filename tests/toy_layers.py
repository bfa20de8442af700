"""Small Python layers for testing the toolchain: the gradient checker (right and deliberately
wrong backwards) and Caffe's Python layer loader (`module: "tests.toy_layers"`)."""
import json

import numpy as np

import caffe


class Square(caffe.Layer):
    """top = bottom ** 2, with the correct backward 2 * bottom * dtop."""

    def setup(self, bottom, top):
        if len(bottom) != 1 or len(top) != 1:
            raise ValueError(f"{type(self).__name__} takes 1 bottom and 1 top, "
                             f"got {len(bottom)} and {len(top)}")

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data ** 2

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = 2 * bottom[0].data * top[0].diff


class SquareWrongGradient(Square):
    """Square with a deliberately wrong backward (the factor 2 is missing)."""

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = bottom[0].data * top[0].diff


class ScaledProduct(caffe.Layer):
    """top = scale * a * b for two bottoms of one shape; param_str: {"scale": float}."""

    def setup(self, bottom, top):
        if len(bottom) != 2 or len(top) != 1:
            raise ValueError("ScaledProduct takes 2 bottoms and 1 top")
        params = json.loads(self.param_str or "{}")
        unknown = set(params) - {"scale"}
        if unknown:
            raise ValueError(f"ScaledProduct: unknown param_str keys {sorted(unknown)}")
        self.scale = float(params.get("scale", 1.0))

    def reshape(self, bottom, top):
        if bottom[0].data.shape != bottom[1].data.shape:
            raise ValueError("ScaledProduct: bottoms differ in shape")
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.scale * bottom[0].data * bottom[1].data

    def backward(self, top, propagate_down, bottom):
        for i in range(2):
            if propagate_down[i]:
                bottom[i].diff[...] = self.scale * bottom[1 - i].data * top[0].diff


class ChannelScale(caffe.Layer):
    """top[n, c, ...] = w[c] * bottom[n, c, ...] with a learnable blob w (starts at 1 + 0.1 c)."""

    def setup(self, bottom, top):
        channels = bottom[0].data.shape[1]
        self.blobs.add_blob(channels)
        self.blobs[0].data[...] = 1 + 0.1 * np.arange(channels)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def weights(self, bottom):
        """w shaped to broadcast over (N, C, ...)."""
        return self.blobs[0].data.reshape((1, -1) + (1,) * (bottom[0].data.ndim - 2))

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data * self.weights(bottom)

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[...] += self.param_gradient(top, bottom)
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff * self.weights(bottom)

    @staticmethod
    def param_gradient(top, bottom):
        product = top[0].diff * bottom[0].data
        return product.sum(axis=tuple(i for i in range(product.ndim) if i != 1))


class ChannelScaleWrongParamGradient(ChannelScale):
    """ChannelScale whose parameter gradient is deliberately wrong (halved)."""

    @staticmethod
    def param_gradient(top, bottom):
        return 0.5 * ChannelScale.param_gradient(top, bottom)
