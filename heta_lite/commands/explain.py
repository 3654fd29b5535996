"""heta-lite explain: one prediction, a ranked table, optional JSON report and PNG heatmap."""
from __future__ import annotations

import argparse
import sys

from .common import (add_model_args, add_settings_args, cache_from_args, read_conversation, read_prompt,
                     settings_from_args)


def add_parser(sub) -> None:
    p = sub.add_parser("explain", help="explain one prediction", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="the prompt text")
    src.add_argument("--prompt-file", help="read the prompt from a UTF-8 file")
    src.add_argument("--conversation", metavar="FILE",
                     help='a JSON file of turns [{"role": "user", "content": ...}, {"role": "assistant", ...}, ...] '
                          "ending with a user turn: explains the model's answer to it")
    tgt = p.add_mutually_exclusive_group()
    tgt.add_argument("--target-pos", type=int, help="teacher-forced: explain the token at this position of the prompt")
    tgt.add_argument("--target-gen", type=int, help="explain the K-th generated token (0 = first; the default)")
    tgt.add_argument("--all-generated", action="store_true",
                     help="explain every generated token; adds the input x output association matrix")
    p.add_argument("--max-new-tokens", type=int, default=20, help="tokens to generate (generated mode)")
    p.add_argument("--heads", action="store_true",
                   help="add head importance to the report: the drop in log p(target) when each attention head is "
                        "zeroed (one batched forward per layer)")
    chat = p.add_mutually_exclusive_group()
    chat.add_argument("--chat", dest="chat", action="store_true", default=None, help="apply the chat template")
    chat.add_argument("--no-chat", dest="chat", action="store_false", help="plain text, no chat template")
    p.add_argument("--method", default="heta", help="attribution method (see `heta-lite models --methods`)")
    add_model_args(p)
    add_settings_args(p)
    p.add_argument("--top", type=int, default=10, help="rows of the ranked table")
    p.add_argument("--json", dest="json_out", help="write the JSON report here ('-' for stdout)")
    p.add_argument("--png", dest="png_out", help="write the PNG heatmap here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine import association_matrix, explain_context, make_context
    from ..models import load_model
    from ..report import Report
    from ..targets import TargetSpec, check_prompt

    prompt = read_conversation(args.conversation) if args.conversation else check_prompt(read_prompt(args))
    settings = settings_from_args(args)
    target = TargetSpec(position=args.target_pos, generated=args.target_gen, max_new_tokens=args.max_new_tokens,
                        chat=args.chat)
    from ..methods import get_method

    get_method(args.method)  # unknown method: fail before loading
    lm = load_model(args.model, device=args.device, quantization=args.quant)
    from ..control import JobControl

    control = JobControl(time_limit_s=args.time_limit, progress=_progress_printer() if args.verbose else None)
    cache = cache_from_args(args)
    from ..profiling import StageTimer

    timer = StageTimer()
    with timer.stage("context"):
        ctx = make_context(lm, prompt, target, settings, cache)
    if ctx.long_input is not None:  # a windowed long prompt: what will be scored, and its cost, before the run
        from ..long_input import preview

        print(preview(lm, ctx, settings, args.method)["line"], file=sys.stderr)
    exp = explain_context(lm, ctx, settings, args.method, control, timer, cache)
    heads = None
    if args.heads:
        from ..heads import head_importance

        ctx = exp.context
        heads = head_importance(lm, list(ctx.input_ids), ctx.target_id, control)
    assoc = None
    if args.all_generated:
        assoc = association_matrix(lm, exp, args.method, control, cache, progress=_association_progress)
        print(file=sys.stderr)
    report = Report.from_explanation(exp, association=assoc, head_importance=heads).to_dict()
    to_stdout = args.json_out == "-"
    table_stream = sys.stderr if to_stdout else sys.stdout
    print_table(report, args.top, table_stream)
    if args.json_out:
        text = Report(report).to_json()
        if to_stdout:
            sys.stdout.write(text + "\n")
        else:
            with open(args.json_out, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
    if args.png_out:
        from ..render import render_association, render_heatmap

        render_heatmap(report, args.png_out)
        if "association" in report:
            render_association(report["association"], args.png_out.replace(".png", "") + ".association.png")
    return 0


def _association_progress(done: int, total: int) -> None:
    print(f"\rassociation: {done}/{total} generated tokens", end="", file=sys.stderr)


def _progress_printer():
    def show(stage: str, done: int, total: int) -> None:
        print(f"\r{stage}: {done}/{total}   ", end="", file=sys.stderr, flush=True)

    return show


def print_table(report: dict, top: int, stream) -> None:
    tgt = report["target"]
    alts = ", ".join(f"'{a['text']}' {a['prob']:.3f}" for a in tgt["alternatives"])
    where = f"generated token {tgt['generated_index']}" if tgt["mode"] == "generated" else f"position {tgt['position']}"
    print(f"Target '{tgt['display']}' ({where}): p = {tgt['prob']:.4f}, rank {tgt['rank']}", file=stream)
    print(f"Top-5 at this position: {alts}", file=stream)
    comps = list(report["tokens"][0]["components"]) if report["tokens"] else []
    header = f"{'rank':>4}  {'pos':>4}  {'token':<20} {'score':>7} {'pctl':>6}" + "".join(f" {c:>7}" for c in comps)
    print(header, file=stream)
    ranked = sorted((t for t in report["tokens"] if t["rank"]), key=lambda t: t["rank"])[:top]
    for t in ranked:
        line = (f"{t['rank']:>4}  {t['index']:>4}  {t['display'][:20]:<20} {t['normalised']:>7.3f} "
                f"{t['percentile']:>6.1f}" + "".join(f" {t['components'][c]['normalised']:>7.3f}" for c in comps))
        print(line, file=stream)
    if report.get("long_input"):  # which tokens were scored, and how (heta_lite/long_input.py)
        print(f"scored: {report['long_input']['statement']}", file=stream)
    for note in report.get("notes", []):
        print(f"note: {note}", file=stream)
    if report.get("derivatives"):
        d = report["derivatives"]
        print(f"derivatives ({report['model']['quantization']}): {d['path']}: {d['reason']}", file=stream)
    c = report.get("faithfulness_check")
    if c:
        print(f"faithfulness check: {c['verdict']} (p = {c['p_before']:.4f}; {c['p_after_top']:.4f} after deleting "
              f"the top-{c['k']} tokens, {c['p_after_random']:.4f} after deleting {c['k']} random ones)", file=stream)
    timings = report["timings_s"]
    st = report["settings"]
    print(f"({report['method']}, quality {st['quality']}, gate {st['gate']}, frame {st['frame']}: "
          f"{timings.get('attribution_total', 0):.1f} s attribution, "
          f"peak RSS {report['memory']['peak_rss_bytes'] / 2**20:.0f} MiB)", file=stream)
