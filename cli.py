"""The ``rnnkit`` command: ``rnnkit <command> --help`` explains each one.

Each subcommand lives beside the code it drives and registers itself through a
``register(subparsers)`` function; this file only imports them. Heavy imports (torch,
gradio) happen inside the commands, so ``rnnkit --help`` and the torch-free edge
commands stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# (module, what it adds). A module missing here is a bug, not a user error.
COMMAND_MODULES = [
    "rnnkit.core.cli.data",      # data fetch / data info
    "rnnkit.core.cli.train",     # train, generate (alias sample)
    "rnnkit.core.cli.eval",      # eval: a task's metric on your file, for a run or a bundle
    "rnnkit.export.cli",         # export, verify
    "rnnkit.edge.cli",           # suggest, eval-suggest
    "rnnkit.edge.predict_cli",   # predict: any bundle on your input (torch-free)
    "rnnkit.demo.cli",           # demo
]


def build_parser() -> argparse.ArgumentParser:
    from rnnkit import __version__

    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description="Recurrent sequence models: train (PyTorch) -> export (ONNX bundle) -> "
                    "serve (Gradio demo, on-device next-word suggestions).",
        epilog="Typical flow: rnnkit data fetch; rnnkit train --recipe char-shakespeare; "
               "rnnkit export runs/char-shakespeare --out bundles/shakespeare; rnnkit demo",
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # that part of rnnkit is not written yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`rnnkit generate ... | head`): stop quietly, as Unix tools do;
        # stdout is pointed at devnull so the interpreter's own final flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:
        # User errors get one clear line, not a traceback; bugs keep their traceback.
        if isinstance(e, (ValueError, FileNotFoundError)) or getattr(e, "user_facing", False):
            print(f"rnnkit {args.command}: error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
