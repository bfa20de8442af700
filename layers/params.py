"""The JSON param_str of the project's Python layers, parsed and checked in one place, so that
every layer's message names the layer and what is wrong."""
import json


def parse_param_str(layer, param_str, required=(), optional=()):
    """param_str as a dict with every required key and no key outside required + optional;
    ValueError naming the layer otherwise (not JSON, not an object, missing or unknown keys)."""
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
    return params
