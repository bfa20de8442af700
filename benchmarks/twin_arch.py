"""The --arch JSON object of the PyTorch twin (benchmarks/torch_twin.py): the keys it must
carry and their check. No torch here, so that tools/bench_torch.py's help and its checks of
the command line work in any interpreter."""
import json

# Every key --arch must carry; the network is built from these alone.
ARCH_KEYS = (
    "conv_channels", "conv_kernels", "conv_strides", "conv_pads", "pool_after",
    "pool_kernel", "pool_stride", "fc_2d_width", "fc_3d_width", "fc_probs_2d_width",
    "dropout_ratio", "grid_size", "num_joints", "input_size", "roots", "cls_2d",
    "lambda_2d", "lambda_3d", "base_lr", "momentum", "weight_decay",
)
CONV_LISTS = ("conv_channels", "conv_kernels", "conv_strides", "conv_pads")


def parse_arch(text):
    """The --arch dict of `text`; ValueError naming what is wrong (the command line's message)."""
    try:
        arch = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--arch is not valid JSON: {error}") from None
    if not isinstance(arch, dict):
        raise ValueError("--arch must be a JSON object")
    missing = [key for key in ARCH_KEYS if key not in arch]
    if missing:
        raise ValueError(f"--arch misses keys: {', '.join(missing)}")
    lengths = {key: len(arch[key]) for key in CONV_LISTS}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"--arch conv lists differ in length: {lengths}")
    if not arch["roots"]:
        raise ValueError("--arch roots must name at least one root joint")
    return arch
