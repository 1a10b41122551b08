"""``rnnkit demo``: serve the Gradio demo on the shipped ONNX bundles."""

from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    import logging

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    if not Path(args.models).is_dir():
        raise FileNotFoundError(f"--models {args.models}: no such directory (the bundles live in models/)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .app import launch

    try:
        launch(args.models, host=args.host, port=args.port, share=args.share, allow_hosts=tuple(args.allow_host))
    except OSError as e:  # the port is taken, or the host is not an address of this machine
        raise ValueError(f"cannot serve on {args.host}:{args.port} ({e}); try another --port") from None
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="open the Gradio demo (Generate, Translate, Sentiment, Suggest)",
        description="Serve the demo in the browser. It runs the ONNX bundles under --models with "
                    "onnxruntime (no torch needed); a missing bundle only disables its tab.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for the network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also ask Gradio for a public share link")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a Host name the demo answers to besides loopback and --host (e.g. the name a reverse "
                        "proxy forwards); requests naming any other Host are refused (DNS rebinding)")
    p.add_argument("--models", default="models", help="directory holding the bundles (default models/)")
    p.set_defaults(func=run)
