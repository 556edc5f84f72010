"""``rfqbot sim``: run the simulated venue in the foreground until SIGINT/SIGTERM.

This is a command-line entry point, so it prints the connection details a user needs to point
rfqbot (or curl) at it, the API secret included: the account is simulated and the secret is
only valid against this process. Because those credentials work and the control endpoint has
no authentication, it listens on loopback only unless told ``--allow-remote``.

Run from the CLI it listens on port 8443 and writes its CA and ground truth into the current
folder, so rfqbot's ``simulator`` venue profile (https://127.0.0.1:8443) works as is with
``venue.ca_file: ./rfqbot-sim-ca.pem``. Embedded ``Simulator()`` keeps port 0 and temp files.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Mapping
from types import FrameType

from rfqbot.sim.config import SimConfig, SimConfigError, load_yaml
from rfqbot.sim.server import CA_FILE_NAME, Simulator

# sysexits.h EX_CONFIG. The simulator imports nothing from rfqbot outside rfqbot.sim, so it
# spells the number here rather than importing rfqbot.errors.EX_CONFIG.
EX_CONFIG = 78
CLI_DEFAULT_PORT = 8443          # the `simulator` venue profile's port
TRUTH_FILE_NAME = "rfqbot-sim-truth.jsonl"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rfqbot sim",
                                     description="Run a simulated HashKey Market Place venue.")
    parser.add_argument("--host", default=None,
                        help="listen address (default 127.0.0.1; loopback only unless --allow-remote)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a non-loopback --host: the control endpoint has no "
                        "authentication and the printed credentials are valid")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port (default {CLI_DEFAULT_PORT}, the `simulator` venue profile's; "
                        "0: any free one)")
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
    parser.add_argument("--ground-truth", default=None,
                        help=f"write the ground-truth JSONL here (default ./{TRUTH_FILE_NAME}, "
                        "overwritten each run)")
    parser.add_argument("--ca-dir", default=None,
                        help=f"write the CA certificate ({CA_FILE_NAME}) here (default: the "
                        "current folder)")
    return parser


def cli_defaults(cwd: str | None = None) -> SimConfig:
    """What the command line uses where sim.yaml and flags say nothing: a fixed port and
    files in the current folder that outlive the run (the CA rfqbot must trust, the truth)."""
    folder = os.path.abspath(cwd or os.getcwd())
    return SimConfig(port=CLI_DEFAULT_PORT, ca_dir=folder,
                     ground_truth_path=os.path.join(folder, TRUTH_FILE_NAME))


def config_from_args(args: argparse.Namespace,
                     env: Mapping[str, str] | None = None) -> SimConfig:
    """Defaults < sim.yaml < environment < flags. Raises SimConfigError naming file and key."""
    env = os.environ if env is None else env
    base = cli_defaults()
    config = load_yaml(args.config, base) if args.config else base
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
    if args.allow_remote:
        config.allow_remote = True
    config.truth_in_memory = False   # a foreground venue may run for days: the file is the record
    config.validate()
    return config


def rfqbot_venue(sim: Simulator) -> str:
    """The ``venue:`` section that points rfqbot at this simulator, as one line of YAML.

    The ``simulator`` profile is https://127.0.0.1:8443; URLs are spelled out only when this
    run differs (another port or host, or plain http/ws)."""
    parts = ["name: simulator"]
    if sim.rest_url != "https://127.0.0.1:8443":
        parts += [f"rest_url: {sim.rest_url}", f"ws_url: {sim.ws_url}"]
    if sim.ca_file:
        parts.append(f'ca_file: "{sim.ca_file}"')
    return "{" + ", ".join(parts) + "}"


def start_failure(exc: BaseException) -> str:
    """Why the venue did not start, and what to do about it."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    if isinstance(cause, OSError) and cause.filename:
        return (f"cannot write {cause.filename} ({cause.strerror}); run it from a writable "
                "folder or pass --ca-dir and --ground-truth")
    if isinstance(cause, OSError):
        return f"{exc}; choose another --port (0 picks a free one)"
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except SimConfigError as exc:   # names the file (if any) and the key
        print(f"rfqbot sim: {exc}", file=sys.stderr)
        return EX_CONFIG
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _serve(Simulator(config), stop)
    finally:   # in-process callers (tests) get their own handlers back
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve(sim: Simulator, stop: threading.Event) -> int:
    try:
        sim.start()
    except (RuntimeError, OSError) as exc:
        print(f"rfqbot sim: {start_failure(exc)}", file=sys.stderr)
        return 1
    print(f"REST URL:     {sim.rest_url}")
    print(f"WS URL:       {sim.ws_url}  (public /quote/ws/v1, private /api/v1/ws/<listenKey>)")
    print(f"CA file:      {sim.ca_file or '(no TLS)'}")
    print(f"API key:      {sim.api_key}")
    print(f"API secret:   {sim.api_secret}")
    print(f"Ground truth: {sim.ground_truth_path}")
    print(f"Control:      POST {sim.rest_url}/sim/control  {{\"action\": ...}}")
    print(f"For rfqbot:   venue: {rfqbot_venue(sim)}")
    print("              credentials: the key and secret above in RFQBOT_API_KEY / "
          "RFQBOT_API_SECRET", flush=True)
    while not stop.wait(0.5):
        pass
    sim.stop()
    return 0
