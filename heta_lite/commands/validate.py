"""heta-lite validate REPORT.json: check a report against the v1 JSON Schema."""
from __future__ import annotations

import json

from ..errors import InputError


def add_parser(sub) -> None:
    p = sub.add_parser("validate", help="validate a JSON report against the schema")
    p.add_argument("report")
    p.set_defaults(func=run)


def run(args) -> int:
    import jsonschema

    from ..report import validate_report

    try:
        with open(args.report, encoding="utf-8") as fh:
            report = json.load(fh)
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"Cannot read {args.report}: {err}") from None
    try:
        validate_report(report)
    except jsonschema.ValidationError as err:
        raise InputError(f"{args.report} is not a valid heta-lite/report/v1 report: {err.message}") from None
    print(f"{args.report}: valid {report['schema']}")
    return 0
