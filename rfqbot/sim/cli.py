"""``rfqbot sim``: run the simulated venue in the foreground until SIGINT/SIGTERM.

This is a command-line entry point, so it prints the connection details a user needs to point
rfqbot (or curl) at it, the API secret included: the account is simulated and the secret is
only valid against this process.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Mapping
from types import FrameType

from rfqbot.sim.config import SimConfig, load_yaml
from rfqbot.sim.server import Simulator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rfqbot sim",
                                     description="Run a simulated HashKey Market Place venue.")
    parser.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: any free one)")
    parser.add_argument("--no-tls", action="store_true", help="plain http/ws instead of https/wss")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 1)")
    parser.add_argument("--lps", type=int, default=None, help="number of simulated LPs")
    parser.add_argument("--time-scale", type=float, default=None,
                        help="divide venue durations by this factor (default 1)")
    parser.add_argument("--api-key", default=None, help="API key (generated if not given)")
    parser.add_argument("--api-secret", default=None,
                        help="API secret (generated if not given); prefer $RFQBOT_SIM_API_SECRET "
                        "so it stays out of the process list")
    parser.add_argument("--config", default=None, help="sim.yaml with more settings")
    parser.add_argument("--ground-truth", default=None, help="write the ground-truth JSONL here")
    parser.add_argument("--ca-dir", default=None, help="write the CA certificate (sim-ca.pem) here")
    return parser


def config_from_args(args: argparse.Namespace,
                     env: Mapping[str, str] | None = None) -> SimConfig:
    env = os.environ if env is None else env
    config = load_yaml(args.config) if args.config else SimConfig()
    if args.api_key is None:
        args.api_key = env.get("RFQBOT_SIM_API_KEY") or None
    if args.api_secret is None:
        args.api_secret = env.get("RFQBOT_SIM_API_SECRET") or None
    overrides = {"host": args.host, "port": args.port, "seed": args.seed, "lps": args.lps,
                 "time_scale": args.time_scale, "api_key": args.api_key,
                 "api_secret": args.api_secret, "ground_truth_path": args.ground_truth,
                 "ca_dir": args.ca_dir}
    for name, value in overrides.items():
        if value is not None:
            setattr(config, name, value)
    if args.lps is not None:
        config.lp_configs = None
    if args.no_tls:
        config.tls = False
    config.truth_in_memory = False   # a foreground venue may run for days: the file is the record
    config.validate()
    return config


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except (OSError, ValueError) as exc:
        print(f"rfqbot sim: {exc}", file=sys.stderr)
        return 78
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sim = Simulator(config)
    try:
        sim.start()
    except RuntimeError as exc:
        print(f"rfqbot sim: {exc}", file=sys.stderr)
        return 1
    print(f"REST URL:     {sim.rest_url}")
    print(f"WS URL:       {sim.ws_url}  (public /quote/ws/v1, private /api/v1/ws/<listenKey>)")
    print(f"CA file:      {sim.ca_file or '(no TLS)'}")
    print(f"API key:      {sim.api_key}")
    print(f"API secret:   {sim.api_secret}")
    print(f"Ground truth: {sim.ground_truth_path}")
    print(f"Control:      POST {sim.rest_url}/sim/control  {{\"action\": ...}}", flush=True)
    while not stop.wait(0.5):
        pass
    sim.stop()
    return 0
