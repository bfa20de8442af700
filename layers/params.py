"""The JSON param_str of the project's Python layers, parsed and checked in one place, so that
every layer's message names the layer and what is wrong."""
import json
import math

# The JSON type of every key a layer reads, so that a value of another type is refused with
# the layer and the key named (rather than int()'s own words, bool("no") taken for true, or
# 2.7 for 2). A key not listed here is only checked by its layer.
KEY_TYPES = {
    "grid_size": "an integer", "image_size": "a number", "num_joints": "an integer",
    "roots": "a list of integers", "schedule": "a list of [iteration, weight] pairs",
    "dir": "a string", "split": "a string", "batch_size": "an integer",
    "input_size": "an integer", "shuffle": "true or false", "seed": "an integer",
    "pca_std": "a number", "workers": "an integer", "processes": "true or false",
    "prefetch": "an integer", "limit": "an integer",
}


def _is_number(value):
    """A JSON number (true and false are not)."""
    return type(value) in (int, float)


_CHECKS = {
    "an integer": lambda v: type(v) is int,
    "a number": _is_number,
    "true or false": lambda v: type(v) is bool,
    "a string": lambda v: type(v) is str,
    "a list of integers": lambda v: type(v) is list and all(type(x) is int for x in v),
    "a list of [iteration, weight] pairs": lambda v: type(v) is list and all(
        type(p) is list and len(p) == 2 and type(p[0]) is int and _is_number(p[1]) for p in v),
}


def _finite(value):
    """Whether every number in a JSON value is finite (JSON's NaN and Infinity, which Python
    reads, and numbers beyond a double's range, which it reads as inf, are not)."""
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def parse_param_str(layer, param_str, required=(), optional=()):
    """param_str as a dict with every required key and no key outside required + optional,
    each number finite and each key of KEY_TYPES of its type; ValueError naming the layer
    otherwise (not JSON, not an object, missing or unknown keys, NaN, a wrong type)."""
    try:
        params = json.loads(param_str or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"{layer} param_str is not JSON ({error}): {param_str!r}") from None
    if not isinstance(params, dict):
        raise ValueError(f"{layer} param_str must be a JSON object, got {param_str!r}")
    allowed = set(required) | set(optional)
    missing, unknown = set(required) - set(params), set(params) - allowed
    if missing or unknown:
        raise ValueError(f"{layer} param_str: missing keys {sorted(missing)}, unknown keys "
                         f"{sorted(unknown)}; expected {sorted(allowed)}")
    for key, value in params.items():
        if not _finite(value):
            raise ValueError(f"{layer} param_str: {key} holds NaN or infinity: {value!r}")
        kind = KEY_TYPES.get(key)
        if kind and not _CHECKS[kind](value):
            raise ValueError(f"{layer} param_str: {key} must be {kind}, got {value!r}")
    return params
