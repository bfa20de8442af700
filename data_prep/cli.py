"""Command-line pieces shared by the dataset builders (make_synth, make_lmdb)."""
import multiprocessing


def add_build_options(parser):
    """--workers, --force and --quiet, as every builder of a dataset folder has them."""
    parser.add_argument("--workers", type=int, default=multiprocessing.cpu_count(),
                        help="parallel processes (default: number of cores)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out that this toolkit built (its marker "
                             "file there); anything else is never replaced")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def reject_unknown(parser, kind, given, known):
    """parser.error naming the unknown entries of `given` (kind: 'action', 'subject')."""
    unknown = [name for name in given if name not in known]
    if unknown:
        parser.error(f"unknown {kind}(s) {', '.join(unknown)}; known: {', '.join(known)}")
