"""The paper's training schedule in iterations (section 4), for a training set of a given size.

An epoch is ceil(train_size / batch_size) iterations (whole batches; batch_size is the batch of
one update on any number of GPUs). Epoch-valued settings of config.py (which may be
fractional) become iterations by rounding.
"""
import dataclasses
import math


def iterations_per_epoch(cfg, train_size):
    if train_size < 1:
        raise ValueError(f"train_size must be positive, got {train_size}")
    return math.ceil(train_size / cfg.batch_size)


def epochs_to_iterations(epochs, per_epoch, at_least=0):
    """Iterations of a (possibly fractional) number of epochs, rounded, at least at_least."""
    return max(at_least, int(round(epochs * per_epoch)))


@dataclasses.dataclass(frozen=True)
class Schedule:
    per_epoch: int          # iterations per epoch
    max_iter: int           # the last iteration (cfg.epochs)
    lambda_2d_switch: int   # first iteration with cfg.lambda_2d_late
    lr_step: int            # the learning rate is multiplied by lr_gamma every lr_step
    snapshot: int           # a snapshot every `snapshot` iterations (and at the end)
    test_interval: int      # a test pass every `test_interval` iterations


def schedule(cfg, train_size):
    """The Schedule of cfg's epochs for train_size training images."""
    per_epoch = iterations_per_epoch(cfg, train_size)
    return Schedule(per_epoch=per_epoch,
                    max_iter=epochs_to_iterations(cfg.epochs, per_epoch, at_least=1),
                    lambda_2d_switch=epochs_to_iterations(cfg.lambda_2d_switch_epoch, per_epoch),
                    lr_step=epochs_to_iterations(cfg.lr_step_epochs, per_epoch, at_least=1),
                    snapshot=epochs_to_iterations(cfg.snapshot_epochs, per_epoch, at_least=1),
                    test_interval=epochs_to_iterations(cfg.test_epochs, per_epoch, at_least=1))


def lambda_2d_schedule(cfg, train_size):
    """[[first iteration, lambda_2D], ...] for layers/loss_schedule.py: cfg.lambda_2d until the
    switch epoch, cfg.lambda_2d_late from then on [sec. 4]."""
    switch = schedule(cfg, train_size).lambda_2d_switch
    if switch == 0:
        return [[0, cfg.lambda_2d_late]]
    return [[0, cfg.lambda_2d], [switch, cfg.lambda_2d_late]]
