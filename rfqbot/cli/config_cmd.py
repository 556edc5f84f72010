"""``rfqbot check-config``: validate the configuration and show what rfqbot will use."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from rfqbot.cli.common import EXIT_OK, common_options, load_settings
from rfqbot.cli.output import print_json
from rfqbot.config.schema import load_credentials, redacted_dict
from rfqbot.errors import ConfigError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check-config", parents=[common_options()], help="validate the config and print it (secrets redacted)",
        description="Validate the configuration and print the effective values (venue profile with "
                    "overrides applied). Exit 0 when valid, 78 when not.")
    parser.set_defaults(func=check_config)


def check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    data = redacted_dict(settings)
    try:
        source = load_credentials(settings).source
        credentials = f"found ({source})"
    except ConfigError as exc:
        credentials = f"missing: {exc.detail}"
    if getattr(args, "json", False):
        print_json({"file": settings.file, "valid": True, "credentials": credentials, "config": data})
        return EXIT_OK
    print(f"# {settings.file}: valid", file=sys.stdout)
    print(f"# credentials: {credentials}")
    print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())
    return EXIT_OK
