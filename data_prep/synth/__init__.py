"""The embedded default dataset: a synthetic Human3.6M written in the raw Human3.6M layout
(motion, rendering, optional BVH input); `python -m data_prep.make_synth --help`."""
import hashlib


def stable_seed(*parts):
    """A seed from strings and ints, e.g. stable_seed("body", "S1"), that is the same in every
    process and Python version (unlike hash(), which is salted per process): the parts joined
    by '/', SHA-256, first 8 bytes little-endian. Every generated dataset depends on this
    recipe: changing it changes every file."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")
