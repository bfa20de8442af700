"""The generated networks have the structure the paper states (sections 3-4, Fig. 1-2)."""
import json

import numpy as np
import pytest

import caffe
from caffe.proto import caffe_pb2
from google.protobuf import text_format
from config import PAPER
from prototxt.pose_net import HERE, PHASES, VARIANTS, generated_files, make_net
from tests.tiny_dataset import write_tiny_dataset

# small widths and batch so that nets instantiate and run quickly; the structure is the same
SMALL = PAPER.replace(batch_size=2, conv_channels=(8, 8, 8, 8, 8), fc_2d_width=16,
                      fc_3d_width=16, fc_probs_2d_width=8)


def layers_of(variant, phase="train", cfg=PAPER, **kwargs):
    return list(make_net(cfg, variant, phase, **kwargs).to_proto().layer)


def by_name(layers):
    return {layer.name: layer for layer in layers}


def instantiate(variant, phase, cfg=SMALL, tmp_path=None, **kwargs):
    proto = make_net(cfg, variant, phase, **kwargs).to_proto()
    path = tmp_path / f"{variant}_{phase}.prototxt"
    path.write_text(str(proto))
    return caffe.Net(str(path), caffe.TRAIN if phase == "train" else caffe.TEST)


@pytest.mark.parametrize("variant", VARIANTS)
def test_trunk_is_zfnet_shaped_with_batchnorm_everywhere(variant):
    layers = layers_of(variant)
    convs = [l for l in layers if l.type == "Convolution"]
    pools = [l for l in layers if l.type == "Pooling"]
    assert [c.convolution_param.kernel_size[0] for c in convs] == [7, 5, 3, 3, 3]
    assert [c.convolution_param.stride[0] for c in convs] == [2, 2, 1, 1, 1]
    assert len(pools) == 3 and all(p.pooling_param.kernel_size == 3 for p in pools)
    hidden_fc = [l for l in layers if l.type == "InnerProduct" and not l.name.startswith("fc2_")]
    for layer in convs + hidden_fc:
        followers = [l for l in layers if list(l.bottom) == [layer.top[0]]]
        types = [l.type for l in followers]
        assert types[:3] == ["BatchNorm", "Scale", "ReLU"], (layer.name, types)
    for layer in hidden_fc:
        drop = [l for l in layers if l.type == "Dropout" and l.bottom[0] == layer.top[0]]
        assert len(drop) == 1 and drop[0].dropout_param.dropout_ratio == pytest.approx(0.3)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("phase", PHASES)
def test_batchnorm_statistics_get_no_learning_rate_and_no_weight_decay(variant, phase):
    """BatchNorm's three blobs are running statistics: Caffe itself sets only their lr_mult
    to 0, which leaves weight decay touching them every step, for an update of zero."""
    batchnorms = [layer for layer in layers_of(variant, phase) if layer.type == "BatchNorm"]
    assert len(batchnorms) >= 7                      # conv1-5, fc1_2D, fc1_3D
    for layer in batchnorms:
        assert [(p.lr_mult, p.decay_mult) for p in layer.param] == [(0, 0)] * 3, layer.name


@pytest.mark.parametrize("variant, heads", [("baseline", [0]), ("2d-cls", [0]),
                                            ("multi-reg", [0, 9, 2, 5, 12, 15]),
                                            ("full", [0, 9, 2, 5, 12, 15])])
def test_root_heads_and_loss_weights(variant, heads):
    layers = by_name(layers_of(variant))
    names = [f"fc2_3D_root{r}" for r in heads]
    assert [n for n in layers if n.startswith("fc2_3D")] == names
    assert all(layers[n].inner_product_param.num_output == 48 for n in names)  # 16 joints x 3
    for r in heads:
        assert layers[f"loss_3D_root{r}"].loss_weight == [pytest.approx(2 * 0.5)]  # 2 lambda_3D
    # the 2D loss is weighted by lambda_2D's schedule of section 4, counted over the real
    # training set (ceil(1,559,752 / 128) = 12,186 iterations per epoch, switch at epoch 16)
    assert list(layers["loss_2D"].loss_weight) == []
    weighted = layers["loss_2D_weighted"]
    assert list(weighted.bottom) == ["loss_2D"] and list(weighted.loss_weight) == [1, 0]
    assert json.loads(weighted.python_param.param_str) == {
        "schedule": [[0, 0.1], [16 * 12186, 0.01]]}
    assert (weighted.param[0].lr_mult, weighted.param[0].decay_mult) == (0, 0)
    small = by_name(layers_of(variant, train_size=1000))["loss_2D_weighted"]
    assert json.loads(small.python_param.param_str)["schedule"][1][0] == 16 * 8


def test_2d_cls_path_has_no_gradient_into_the_2d_branch():
    layers = by_name(layers_of("full"))
    assert layers["probs_2D"].softmax_param.axis == 2                 # softmax per joint
    assert list(layers["fc_probs_2D"].bottom) == ["probs_2D"]
    assert list(layers["fc_probs_2D"].propagate_down) == [False]
    assert list(layers["fc_2D-3D"].bottom) == ["fc1_3D", "fc_probs_2D"]
    assert "fc_probs_2D" not in by_name(layers_of("multi-reg"))


def gradient_reaching_2d_branch(tmp_path, keep_stop_gradient):
    """|d loss_3D / d fc2_2D weights| with lambda_2D = 0, so only the 3D losses train."""
    proto = make_net(SMALL.replace(lambda_2d=0.0), "full", "train").to_proto()
    if not keep_stop_gradient:
        for layer in proto.layer:
            del layer.propagate_down[:]
    path = tmp_path / f"net_{keep_stop_gradient}.prototxt"
    path.write_text(str(proto))
    net = caffe.Net(str(path), caffe.TRAIN)
    net.forward()
    for blobs in net.params.values():
        for blob in blobs:
            blob.diff[...] = 0
    net.backward()
    return (np.abs(net.params["fc2_2D"][0].diff).sum(),
            np.abs(net.params["fc1_3D"][0].diff).sum())


def test_3d_loss_does_not_train_the_2d_branch(tmp_path):
    to_2d, to_3d = gradient_reaching_2d_branch(tmp_path, keep_stop_gradient=True)
    assert to_2d == 0 and to_3d > 0
    # without propagate_down false the same net would pass the 3D gradient into fc2_2D
    to_2d, _ = gradient_reaching_2d_branch(tmp_path, keep_stop_gradient=False)
    assert to_2d > 0


def test_heads_have_separate_weights(tmp_path):
    net = instantiate("full", "train", tmp_path=tmp_path)
    weights = [net.params[f"fc2_3D_root{r}"][0].data for r in PAPER.root_joints]
    assert len({w.ctypes.data for w in weights}) == 6            # six separate blobs
    assert not np.allclose(weights[0], weights[1])               # initialised independently


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_net_instantiates_and_deploy_outputs_a_pose(variant, tmp_path):
    train = instantiate(variant, "train", tmp_path=tmp_path)
    losses = train.forward()
    assert all(np.isfinite(v).all() for v in losses.values())
    test = instantiate(variant, "test", tmp_path=tmp_path)
    # the solver prints every value of every test output: only the losses (and the one
    # number lambda_2D) are outputs
    assert all(name.startswith("loss_") or name == "lambda_2D" for name in test.outputs), \
        test.outputs
    assert "loss_2D_weighted" in test.outputs and "loss_2D" not in test.outputs
    deploy = instantiate(variant, "deploy", tmp_path=tmp_path)
    assert deploy.blobs["data"].data.shape == (1, 3, 225, 225)
    out = deploy.forward()
    assert out["pose_3D"].shape == (1, 17, 3)
    probs = deploy.blobs["probs_2D"].data        # an output, or consumed by fc_probs_2D
    assert probs.shape == (1, 17, 256)
    np.testing.assert_allclose(probs.sum(axis=2), 1, rtol=1e-5)
    np.testing.assert_allclose(out["pose_3D"].mean(axis=1), 0, atol=1e-6)    # eq. 7: zero mean


def test_unknown_variant_or_phase():
    with pytest.raises(ValueError, match="unknown variant 'both'"):
        make_net(PAPER, "both", "train")
    with pytest.raises(ValueError, match="unknown phase 'val'"):
        make_net(PAPER, "full", "val")


def test_committed_prototxt_matches_the_generator():
    for relative, text in generated_files().items():
        path = HERE / relative
        assert path.exists(), f"{path} missing: run `make prototxt`"
        assert path.read_text() == text, f"{path} drifted from prototxt/pose_net.py: run `make prototxt`"
        parsed = caffe_pb2.NetParameter()
        text_format.Merge(text, parsed)
        assert parsed.name.startswith("park2016_")


def test_train_net_reads_the_lmdbs_through_the_data_layer(tmp_path):
    """With data=<LMDB folder> the nets take images and joints from the H36MData layer."""
    folder = write_tiny_dataset(tmp_path / "lmdb")
    cfg = SMALL.replace(batch_size=4)
    net = instantiate("full", "train", cfg=cfg, tmp_path=tmp_path, data=str(folder))
    losses = net.forward()
    assert net.blobs["data"].data.shape == (4, 3, 225, 225)
    assert net.blobs["joints_3D"].data.shape == (4, 17, 3)
    assert all(np.isfinite(v).all() for v in losses.values())
    layer = by_name(make_net(cfg, "full", "test", data=str(folder)).to_proto().layer)["data"]
    assert '"split": "test"' in layer.python_param.param_str
    # the data seed and the colour augmentation's strength come from the config
    tuned = cfg.replace(data_seed=5, pca_std=0.25)
    layer = by_name(make_net(tuned, "full", "train", data=str(folder)).to_proto().layer)["data"]
    params = json.loads(layer.python_param.param_str)
    assert (params["seed"], params["pca_std"]) == (5, 0.25)
