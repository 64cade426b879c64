"""``fastelbo info``: the versions and build options of the installed package
(:func:`fastelbo.build_info`), one ``name: value`` line each, or as JSON with ``--json``."""

from __future__ import annotations

import json


def add_info_parser(commands):
    parser = commands.add_parser("info", help="print the versions and build options (build_info())")
    parser.add_argument("--json", action="store_true", help="print build_info() as a JSON object")
    parser.set_defaults(run=run_info, command_parser=parser)
    return parser


def run_info(args) -> int:
    from fastelbo import build_info

    info = build_info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    width = max(map(len, info))
    for name, value in info.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value)) if value else "(none)"
        print(f"{name + ':':<{width + 1}} {value}")
    return 0
