"""The ``hadasklearn`` console script: ``benchmark``, ``extract`` and ``dmarkers`` sub-commands."""

import argparse
import importlib
import sys

__all__ = ["build_parser", "main"]

# Sub-command modules; each defines ``add_parser(subparsers)`` (setting ``func=run``) and ``run(args) -> int``.
_COMMANDS = ("benchmark", "extract", "dmarkers")


def build_parser():
    """The argument parser of the ``hadasklearn`` command."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="hadasklearn",
        description="Genuine vs posed smile recognition from facial-landmark videos.",
    )
    parser.add_argument("--version", action="version", version=f"hadasklearn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status.

    Examples
    --------
    >>> main(["--help"])  # doctest: +SKIP
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args) or 0)
