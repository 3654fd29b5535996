"""heta-lite correct: answer, correct, answer again, and compare the two explanations (issue #17)."""
from __future__ import annotations

import argparse
import sys

from .common import add_model_args, add_settings_args, cache_from_args, read_prompt, settings_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("correct", help="answer, take a correction, answer again; compare both explanations",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="the question")
    src.add_argument("--prompt-file", help="read the question from a UTF-8 file")
    p.add_argument("--correction", required=True, help="the user's correction of the first answer")
    p.add_argument("--max-new-tokens", type=int, default=20, help="length of each answer")
    chat = p.add_mutually_exclusive_group()
    chat.add_argument("--chat", dest="chat", action="store_true", default=None, help="apply the chat template")
    chat.add_argument("--no-chat", dest="chat", action="store_false",
                      help="no chat template: the plain 'User:/Assistant:' turn format")
    p.add_argument("--method", default="heta", help="attribution method (see `heta-lite models --methods`)")
    add_model_args(p)
    add_settings_args(p)
    p.add_argument("--json", dest="json_out",
                   help="write {comparison, before, after} here ('-' for stdout): the two v1 reports and the comparison")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..control import JobControl
    from ..correction import correct_and_compare
    from ..methods import get_method
    from ..models import load_model
    from ..report import Report, dumps
    from ..targets import check_prompt

    question = check_prompt(read_prompt(args))  # before the (slow) model load
    correction = check_prompt(args.correction)
    settings = settings_from_args(args)
    get_method(args.method)
    lm = load_model(args.model, device=args.device, quantization=args.quant)
    control = JobControl(time_limit_s=args.time_limit)
    cmp = correct_and_compare(lm, question, correction, settings, args.method, args.max_new_tokens, args.chat,
                              control, cache_from_args(args))
    out = sys.stderr if args.json_out == "-" else sys.stdout
    for name, side in (("before", cmp.before), ("after", cmp.after)):
        exp = side.explanation
        top = ", ".join(f"{d} {s:.2f}" for _, d, s in exp.top_tokens(5))
        alts = ", ".join(f"'{a.text}' {a.prob:.2f}" for a in exp.target.alternatives)
        print(f"{name:>6}: {side.answer!r}", file=out)
        print(f"        first token {exp.context.target_token.display} p={exp.target.prob:.3f}; top-5: {alts}", file=out)
        print(f"        most influential: {top}", file=out)
        settle = next((r["layer"] for r in side.lens if r["top"][0]["id"] == exp.context.target_id), None)
        print(f"        logit lens: the target is the top token from layer {settle} of {len(side.lens)}", file=out)
    print(f"summary: {cmp.summary()}", file=out)
    if args.json_out:
        doc = {"comparison": cmp.to_dict(), "before": Report.from_explanation(cmp.before.explanation).to_dict(),
               "after": Report.from_explanation(cmp.after.explanation).to_dict()}
        text = dumps(doc)
        if args.json_out == "-":
            sys.stdout.write(text + "\n")
        else:
            with open(args.json_out, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
    return 0
