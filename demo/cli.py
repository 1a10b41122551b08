"""``rnnkit demo``: serve the Gradio demo on ONNX bundles.

    rnnkit demo                      every bundle under models/ (the shipped ones)
    rnnkit demo --models bundles/    every bundle under bundles/, each in the tabs of its kind
    rnnkit demo bundles/my-sent ...  exactly these bundles
"""

from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    import logging

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    if args.bundles and args.models is not None:
        raise ValueError("give bundle directories or --models DIR, not both")
    models = args.models or "models"
    for b in args.bundles:
        if not (Path(b) / "manifest.json").is_file():
            raise FileNotFoundError(f"{b}: not a bundle (no manifest.json); make one with `rnnkit export RUN --out {b}`")
    if not args.bundles:
        if not Path(models).is_dir():
            raise FileNotFoundError(f"--models {models}: no such directory (the bundles live in models/)")
        from .shelf import candidate_dirs

        if not candidate_dirs(Path(models)):
            raise FileNotFoundError(f"--models {models}: no bundle in it (no subfolder with a manifest.json); "
                                    "make one with `rnnkit export RUN --out DIR/NAME`")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .app import launch

    try:
        launch(models, host=args.host, port=args.port, share=args.share, allow_hosts=tuple(args.allow_host),
               bundles=args.bundles or None)
    except OSError as e:  # the port is taken, or the host is not an address of this machine
        raise ValueError(f"cannot serve on {args.host}:{args.port} ({e}); try another --port") from None
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="open the Gradio demo (Generate, Translate, Sentiment, Suggest, Entities, Forecast)",
        description="Serve the demo in the browser. It runs ONNX bundles with onnxruntime (no torch needed): "
                    "the bundles given, else every bundle under --models, each in the tabs of its manifest's "
                    "kind with a picker per tab; a kind without a bundle only disables its tab.")
    p.add_argument("bundles", nargs="*", metavar="BUNDLE", help="bundle directories to open (default: --models)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for the network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also ask Gradio for a public share link")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a Host name the demo answers to besides loopback and --host (e.g. the name a reverse "
                        "proxy forwards); requests naming any other Host are refused (DNS rebinding)")
    p.add_argument("--models", default=None, help="directory whose subfolders are bundles (default models/)")
    p.set_defaults(func=run)
