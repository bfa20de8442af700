"""Finite-difference check of a Caffe Python layer's backward, run through pycaffe.

The layer is wrapped in a small net: one Input blob per bottom, then the Python layer, with
`force_backward` so Caffe asks it for every bottom gradient. With fixed random weights W_t per
top, the scalar

    L = sum_t sum(W_t * top_t)

has dL/dtop_t = W_t, which is what we hand to Caffe's backward; the resulting bottom (and
parameter) diffs are compared element by element with central differences of L

    (L(x + eps) - L(x - eps)) / (2 eps)

using Caffe's own GradientChecker criterion: |analytic - numeric| <= tolerance * max(1, |a|, |n|).

    report = check_layer_gradient("layers.soft_labels", "SoftLabelLoss", [scores, joints],
                                  param_str=json.dumps({...}), check_bottoms=[0])
    assert report.ok, report.summary()

or `assert_layer_gradient(...)`, which raises GradientCheckError with the worst mismatches.
"""
import dataclasses
import os
import tempfile

import numpy as np

import caffe
from caffe import layers as L


class GradientCheckError(AssertionError):
    pass


@dataclasses.dataclass
class Mismatch:
    blob: str          # "bottom 0" or "param 1"
    index: tuple
    analytic: float
    numeric: float


@dataclasses.dataclass
class GradientReport:
    layer: str
    checked: int                       # number of elements compared
    max_error: float                   # largest |a - n| / max(1, |a|, |n|)
    mismatches: list                   # Mismatch entries beyond the tolerance, worst first
    tolerance: float

    @property
    def ok(self):
        return not self.mismatches

    def summary(self, limit=5):
        head = (f"{self.layer}: {self.checked} gradient elements checked, max scaled error "
                f"{self.max_error:.3g} (tolerance {self.tolerance:g})")
        if self.ok:
            return head + ", all within tolerance"
        lines = [head + f", {len(self.mismatches)} beyond tolerance; worst:"]
        lines += [f"  {m.blob}{list(m.index)}: backward {m.analytic:.6g}, "
                  f"finite difference {m.numeric:.6g}" for m in self.mismatches[:limit]]
        return "\n".join(lines)


def layer_net(module, layer, bottom_shapes, param_str="", n_tops=1, phase=caffe.TRAIN):
    """A net of Input blobs bottom0..k feeding the Python layer, whose tops are top0..n."""
    spec = caffe.NetSpec()
    bottoms = []
    for i, shape in enumerate(bottom_shapes):
        spec[f"bottom{i}"] = L.Input(shape=dict(dim=[int(d) for d in shape]))
        bottoms.append(spec[f"bottom{i}"])
    tops = L.Python(*bottoms, ntop=n_tops,
                    python_param=dict(module=module, layer=layer, param_str=param_str))
    for i, top in enumerate([tops] if n_tops == 1 else tops):
        spec[f"top{i}"] = top
    proto = spec.to_proto()
    proto.force_backward = True
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as handle:
        handle.write(str(proto))
    try:
        return caffe.Net(handle.name, phase)
    finally:
        os.unlink(handle.name)


def check_layer_gradient(module, layer, bottoms, param_str="", *, n_tops=1, check_bottoms=None,
                         check_params=True, eps=1e-2, tolerance=1e-2, max_checks=200, seed=0,
                         phase=caffe.TRAIN):
    """Compare the layer's backward with central differences; returns a GradientReport.

    bottoms: arrays with the values of the bottom blobs (their shapes make the net).
    check_bottoms: indices of bottoms whose gradient is checked (default: all; leave out labels).
    check_params: also check the layer's own parameter blobs (self.blobs).
    max_checks: at most this many randomly chosen elements per blob (None: every element).
    """
    rng = np.random.default_rng(seed)
    bottoms = [np.asarray(b, dtype=np.float32) for b in bottoms]
    net = layer_net(module, layer, [b.shape for b in bottoms], param_str, n_tops, phase)
    python_index = [i for i, lyr in enumerate(net.layers) if lyr.type == "Python"][0]
    params = list(net.layers[python_index].blobs) if check_params else []
    for i, value in enumerate(bottoms):
        net.blobs[f"bottom{i}"].data[...] = value
    top_names = [f"top{i}" for i in range(n_tops)]

    def objective():
        net.forward()
        return sum(float(np.sum(weights[t].astype(np.float64) * net.blobs[t].data))
                   for t in top_names)

    net.forward()
    weights = {t: rng.standard_normal(net.blobs[t].data.shape).astype(np.float32)
               for t in top_names}
    for blob in [net.blobs[f"bottom{i}"] for i in range(len(bottoms))] + params:
        blob.diff[...] = 0
    net.backward(**weights)

    targets = [(f"bottom {i}", net.blobs[f"bottom{i}"])
               for i in (range(len(bottoms)) if check_bottoms is None else check_bottoms)]
    targets += [(f"param {i}", blob) for i, blob in enumerate(params)]
    analytic = {name: blob.diff.copy() for name, blob in targets}

    checked, max_error, mismatches = 0, 0.0, []
    for name, blob in targets:
        flat = blob.data.reshape(-1)  # a view on the blob's memory
        count = flat.size
        picks = np.arange(count) if max_checks is None or count <= max_checks else \
            rng.choice(count, size=max_checks, replace=False)
        for k in picks:
            original = flat[k]
            flat[k] = original + eps
            plus = objective()
            flat[k] = original - eps
            minus = objective()
            flat[k] = original
            numeric = (plus - minus) / (2 * eps)
            computed = float(analytic[name].reshape(-1)[k])
            error = abs(computed - numeric) / max(1.0, abs(computed), abs(numeric))
            checked += 1
            max_error = max(max_error, error)
            if error > tolerance:
                index = tuple(int(i) for i in np.unravel_index(k, blob.data.shape))
                mismatches.append((error, Mismatch(name, index, computed, numeric)))
    mismatches.sort(key=lambda pair: -pair[0])
    return GradientReport(f"{module}.{layer}", checked, max_error,
                          [m for _, m in mismatches], tolerance)


def assert_layer_gradient(*args, **kwargs):
    """check_layer_gradient, raising GradientCheckError when any element is off."""
    report = check_layer_gradient(*args, **kwargs)
    if not report.ok:
        raise GradientCheckError(report.summary())
    return report
