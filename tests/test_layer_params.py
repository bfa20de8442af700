"""Every Python layer's param_str is checked by layers/params.py: a bad one is refused with
the layer's name and what is wrong, when the net is made."""
import pytest

from layers.params import parse_param_str
from tests.gradcheck import layer_net

LAYERS = [("layers.soft_labels", "SoftLabelLoss", [(2, 17, 256), (2, 17, 2)], 1),
          ("layers.pose_3d", "RootTargets", [(2, 17, 3)], 1),
          ("layers.pose_3d", "MultiRootAverage", [(2, 48)], 1),
          ("layers.loss_schedule", "ScheduledLossWeight", [(1,)], 2),
          ("layers.h36m_data", "H36MData", [], 3)]


@pytest.mark.parametrize("module, layer, bottoms, tops", LAYERS)
@pytest.mark.parametrize("param_str, message", [
    ("{not json", "param_str is not JSON"),
    ("[1, 2]", "param_str must be a JSON object"),
    ('{"surprise": 1}', "unknown keys \\['surprise'\\]"),
])
def test_a_bad_param_str_names_the_layer(module, layer, bottoms, tops, param_str, message):
    with pytest.raises(Exception, match=f"{layer} {message}" if "JSON" in message
                       else f"{layer} param_str: missing keys .*{message}"):
        layer_net(module, layer, bottoms, param_str, n_tops=tops)


def test_required_and_optional_keys():
    assert parse_param_str("L", '{"a": 1, "b": 2}', ["a"], ["b", "c"]) == {"a": 1, "b": 2}
    with pytest.raises(ValueError, match=r"L param_str: missing keys \['a'\], unknown keys "
                                         r"\[\]; expected \['a', 'b'\]"):
        parse_param_str("L", "", ["a"], ["b"])
