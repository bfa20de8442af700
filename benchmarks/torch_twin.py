"""PyTorch twin of the Caffe pose network, timed on the CPU or a GPU (the reference point for
Caffe's training step in `make bench` and `make gpu-check`; tools/bench_torch.py is its
command line).

This module builds in PyTorch the same training net that prototxt/pose_net.py builds in Caffe
and times its training step (zero_grad, forward, loss, backward, SGD step) on the CPU, or on
a GPU with --device cuda (each step ends with torch.cuda.synchronize(), so that its time is
the GPU's work, not the launch; TF32 stays as PyTorch sets it by default, which allows it in
cuDNN's convolutions and not in matrix products, as Caffe's cuDNN and cuBLAS calls do, and the
output names both flags). It runs in its own virtual environment, which has PyTorch and not
Caffe (nor NumPy), so it imports only torch and the standard library; the architecture
arrives as JSON on the command line (checked by benchmarks/twin_arch.py) instead of from
config.py. The one thing run() prints on stdout is a JSON object (the last line); progress
goes to stderr.

How it mirrors the Caffe net (same layer kinds and blob shapes):
  trunk      each conv i: Convolution (no bias) -> BatchNorm + Scale with bias -> ReLU, i.e.
             Conv2d(bias=False) -> BatchNorm2d(affine=True) -> ReLU; max pooling after the
             convs listed in pool_after, rounded up like Caffe (ceil_mode=True):
             225 -> conv1 111 -> pool 55 -> conv2 26 -> pool 13 -> conv3..5 13 -> pool 6.
  2D branch  fc1_2D: Linear (no bias) -> BatchNorm1d -> ReLU -> Dropout, then fc2_2D (with
             bias) -> scores (B, J, G*G); loss_2D is the soft-label cross-entropy summed over
             joints and averaged over the batch (layers/soft_labels.py), weight lambda_2d.
  3D branch  fc1_3D like fc1_2D. With cls_2d, probs_2D = softmax over the G*G cells, detached
             (Caffe's propagate_down false: the 3D loss never reaches the 2D branch), flattened
             -> fc_probs_2D (Linear, BatchNorm1d, ReLU, Dropout), concatenated after fc1_3D.
             One fc2_3D_root<r> head per root (3 * (J - 1) outputs) with a Caffe EuclideanLoss,
             sum((a - b)^2) / (2B), at loss weight 2 * lambda_3d.
  solver     SGD with base_lr, momentum and weight_decay; train mode throughout (BatchNorm
             uses batch statistics, dropout is on), as in a Caffe training iteration.
Images and targets are fixed random tensors made once before timing: the data pipeline is
not what is measured, only the network's step.

Run (in the environment that has PyTorch):
    .venv-bench/bin/python tools/bench_torch.py --arch '<json>' --batch 32 \\
        --iterations 5 --warmup 2 --threads 2 --variant full
With --serve it stays up after the warm-up and answers one JSON line per command line read
from stdin, so that `make bench` can time it interleaved with Caffe (A, B, A, B ...):
    train K        K training steps          -> {"seconds": [...]}
    infer B K      K forward passes at batch B, eval mode, no gradients (the deploy net's
                   work: the 2D scores and every root head)  -> {"seconds": [...]}
    gemm N         the best of 3 float32 N x N x N products   -> {"gflops": rate}
    quit
--arch holds the keys listed in twin_arch.ARCH_KEYS (extra keys are ignored, so a whole config
dict may be passed). Machines here are shared and noisy: compare numbers taken in one session.
"""
import json
import statistics
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.timing import timed

# Caffe's DummyData images in the committed train nets are Gaussian with this std; the value
# does not change the step time, it only keeps activations in a realistic range.
IMAGE_STD = 50.0


def conv_bn_relu(in_channels, out_channels, kernel, stride, pad):
    """Caffe's Convolution (bias_term false) + BatchNorm + Scale (with bias) + ReLU."""
    return [nn.Conv2d(in_channels, out_channels, kernel, stride, pad, bias=False),
            nn.BatchNorm2d(out_channels, affine=True),  # affine = Caffe's Scale layer
            nn.ReLU(inplace=True)]


def fc_bn_relu_dropout(in_features, width, dropout_ratio):
    """Caffe's hidden InnerProduct (bias_term false) + BatchNorm + Scale + ReLU + Dropout."""
    return nn.Sequential(nn.Linear(in_features, width, bias=False),
                         nn.BatchNorm1d(width, affine=True),
                         nn.ReLU(inplace=True),
                         nn.Dropout(dropout_ratio))


def build_trunk(arch):
    """conv1..convN with max pooling after the convs named in pool_after, then flatten."""
    layers, channels = [], 3
    for index, out_channels in enumerate(arch["conv_channels"]):
        layers += conv_bn_relu(channels, out_channels, arch["conv_kernels"][index],
                               arch["conv_strides"][index], arch["conv_pads"][index])
        if index in arch["pool_after"]:
            # Caffe rounds pooled sizes up; PyTorch rounds down unless told otherwise
            layers.append(nn.MaxPool2d(arch["pool_kernel"], arch["pool_stride"], ceil_mode=True))
        channels = out_channels
    return nn.Sequential(*layers)


class PoseNet(nn.Module):
    """The Caffe train net of prototxt/pose_net.py: trunk, 2D branch, 3D branch, root heads."""

    def __init__(self, arch):
        super().__init__()
        self.joints, self.cells = arch["num_joints"], arch["grid_size"] ** 2
        self.cls_2d = bool(arch["cls_2d"])
        size, dropout = arch["input_size"], arch["dropout_ratio"]
        self.trunk = build_trunk(arch)
        # the trunk's flattened width follows from the conv/pool arithmetic; measure it once,
        # in eval mode so that the probe leaves BatchNorm's running statistics alone
        self.trunk.eval()
        with torch.no_grad():
            trunk_width = self.trunk(torch.zeros(1, 3, size, size)).numel()
        self.trunk.train()
        self.fc1_2d = fc_bn_relu_dropout(trunk_width, arch["fc_2d_width"], dropout)
        self.fc2_2d = nn.Linear(arch["fc_2d_width"], self.joints * self.cells)
        self.fc1_3d = fc_bn_relu_dropout(trunk_width, arch["fc_3d_width"], dropout)
        features_3d = arch["fc_3d_width"]
        if self.cls_2d:
            self.fc_probs_2d = fc_bn_relu_dropout(self.joints * self.cells,
                                                  arch["fc_probs_2d_width"], dropout)
            features_3d += arch["fc_probs_2d_width"]
        # one regression head per root joint (the others' offsets from it: 3 * (J - 1))
        self.heads = nn.ModuleList(nn.Linear(features_3d, 3 * (self.joints - 1))
                                   for _ in arch["roots"])

    def forward(self, images):
        """-> (pool map (B, C, H, W), scores (B, J, G*G), [head (B, 3(J-1)) per root])."""
        pooled = self.trunk(images)
        trunk = pooled.flatten(1)
        scores = self.fc2_2d(self.fc1_2d(trunk)).view(-1, self.joints, self.cells)
        features_3d = self.fc1_3d(trunk)
        if self.cls_2d:
            # detach = Caffe's propagate_down false on fc_probs_2D: the 2D branch is trained
            # by the 2D loss only (paper sec. 3.2)
            probs = F.softmax(scores, dim=2).detach().flatten(1)
            features_3d = torch.cat([features_3d, self.fc_probs_2d(probs)], dim=1)
        return pooled, scores, [head(features_3d) for head in self.heads]


def soft_label_loss(scores, labels):
    """Soft-label cross-entropy per joint, summed over joints, averaged over the batch."""
    return -(labels * F.log_softmax(scores, dim=2)).sum() / scores.shape[0]


def euclidean_loss(prediction, target):
    """Caffe's EuclideanLoss: half the squared distance, averaged over the batch."""
    return (prediction - target).pow(2).sum() / (2 * prediction.shape[0])


def total_loss(arch, scores, heads, labels_2d, targets_3d):
    """lambda_2d * loss_2D + sum over roots of (2 lambda_3d) * EuclideanLoss, as in Caffe."""
    loss = arch["lambda_2d"] * soft_label_loss(scores, labels_2d)
    for head, target in zip(heads, targets_3d):
        loss = loss + 2 * arch["lambda_3d"] * euclidean_loss(head, target)
    return loss


def fixed_inputs(arch, batch, device="cpu"):
    """Random images, soft labels (non-negative rows summing to 1) and 3D targets, made once."""
    joints, cells, size = arch["num_joints"], arch["grid_size"] ** 2, arch["input_size"]
    images = torch.randn(batch, 3, size, size) * IMAGE_STD
    labels = torch.rand(batch, joints, cells)
    labels = labels / labels.sum(dim=2, keepdim=True)
    targets = [torch.randn(batch, 3 * (joints - 1)) for _ in arch["roots"]]
    return images.to(device), labels.to(device), [t.to(device) for t in targets]


def parallel_info_line():
    """The line of torch's parallel report that gives the intra-op thread count."""
    lines = [line.strip() for line in torch.__config__.parallel_info().splitlines()]
    for wanted in ("get_num_threads", "ATen/Parallel"):
        for line in lines:
            if wanted in line:
                return line
    return lines[0] if lines else ""


def gpu_available():
    """Whether PyTorch sees a GPU here (--device cuda needs one)."""
    return torch.cuda.is_available()


def run(args):
    """Time the training step with the settings of tools/bench_torch.py's command line
    (args.arch: the checked --arch dict), or serve with --serve; the exit status."""
    # interop threads can only be set before torch starts parallel work, so first of all;
    # one interop thread keeps the comparison with single-stream Caffe fair
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError as error:
        print(f"could not set interop threads: {error}", file=sys.stderr)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    arch = args.arch
    device = torch.device(args.device)
    synchronize = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    model = PoseNet(arch).to(device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=arch["base_lr"],
                                momentum=arch["momentum"], weight_decay=arch["weight_decay"])
    images, labels_2d, targets_3d = fixed_inputs(arch, args.batch, device)
    shapes = {}

    def train_step():
        optimizer.zero_grad()
        pooled, scores, heads = model(images)
        loss = total_loss(arch, scores, heads, labels_2d, targets_3d)
        loss.backward()
        optimizer.step()
        synchronize()
        if not shapes:
            shapes.update(trunk=list(pooled.shape), scores=list(scores.shape),
                          head=list(heads[0].shape))
        return loss.item()

    for step in range(args.warmup):
        loss = train_step()
        print(f"warmup {step + 1}/{args.warmup}: loss {loss:.4g}", file=sys.stderr)
    if args.serve:
        return serve(model, train_step, arch, synchronize)
    step_seconds = []
    for step in range(args.iterations):
        started = time.perf_counter()
        loss = train_step()
        step_seconds.append(time.perf_counter() - started)
        print(f"step {step + 1}/{args.iterations}: {step_seconds[-1]:.3f} s, loss {loss:.4g}",
              file=sys.stderr)

    median = statistics.median(step_seconds)
    result = {
        "framework": "pytorch",
        "torch_version": torch.__version__,
        "variant": args.variant,
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "iterations": args.iterations,
        "step_seconds": step_seconds,
        "median_step_seconds": median,
        "images_per_second": args.batch / median,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "device": (torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "parallel_info_first_line": parallel_info_line(),
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        # trunk is the last pooled map (Caffe's pool5 blob); its features per image are
        # trunk[1] * trunk[2] * trunk[3]
        "output_shapes": shapes,
    }
    print(json.dumps(result))
    return 0



def serve(model, train_step, arch, synchronize):
    """Answer the commands of the module docstring, one JSON line each, until quit/EOF."""
    size = arch["input_size"]
    print(json.dumps({"ready": True, "torch_version": torch.__version__,
                      "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "train":
            answer = {"seconds": timed(train_step, int(words[1]))}
        elif words[0] == "infer":
            batch, times = int(words[1]), int(words[2])
            images = torch.randn(batch, 3, size, size) * IMAGE_STD
            model.eval()
            with torch.no_grad():
                model(images)   # warm-up at this batch size
                answer = {"seconds": timed(lambda: (model(images), synchronize()), times)}
            model.train()
        elif words[0] == "gemm":
            n = int(words[1])
            a, b = torch.randn(n, n), torch.randn(n, n)
            torch.mm(a, b)
            answer = {"gflops": 2 * n ** 3 / min(timed(lambda: torch.mm(a, b), 3)) / 1e9}
        else:
            answer = {"error": f"unknown command {words[0]!r}"}
        print(json.dumps(answer), flush=True)
    return 0
