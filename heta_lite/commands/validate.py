"""heta-lite validate REPORT.json: check a report against the v1 JSON Schema."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("validate", help="validate a JSON report against the schema")
    p.add_argument("report")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report import Report

    report = Report.load(args.report)  # ReportError (an InputError) names the file and the failing field
    print(f"{args.report}: valid {report.document['schema']}")
    return 0
