"""The result card: summary, heatmap, faithfulness check, top tokens, alternatives, the three
component strips, the settings line and the downloads."""
from __future__ import annotations

from typing import Callable

from nicegui import ui

from .long_input import LongInputView
from .state import PageState
from ..views import check_html, heatmap_html, legend_html, risk_html, strips_html


class ResultPanel:
    def __init__(self, ps: PageState) -> None:
        self.ps = ps
        self.on_shown: Callable = lambda report: None  # e.g. the explore panel follows the new target
        with ui.card().classes("w-full") as self.card:
            self.summary = ui.label("").classes("text-base font-medium").props("id=summary")
            self.heat = ui.html("", sanitize=False).classes("w-full").mark("heatmap")
            self.check_line = ui.html("", sanitize=False).classes("text-sm").mark("check")
            self.risk_line = ui.html("", sanitize=False).classes("text-sm").mark("risk")
            self.long_input = LongInputView()  # a long prompt: what was scored, the earlier chunks' effects
            ui.html(legend_html(), sanitize=False)
            with ui.row().classes("w-full gap-6 items-start"):
                with ui.column():
                    ui.label("Most influential tokens").classes("font-medium")
                    self.top_table = ui.table(columns=[
                        {"name": "rank", "label": "rank", "field": "rank"},
                        {"name": "token", "label": "token", "field": "token"},
                        {"name": "score", "label": "share", "field": "score"},
                        {"name": "pct", "label": "percentile", "field": "pct"}], rows=[], row_key="rank") \
                        .props("dense flat")
                with ui.column():
                    ui.label("What the model considered at this position").classes("font-medium")
                    self.alt_table = ui.table(columns=[{"name": "token", "label": "token", "field": "token"},
                                                       {"name": "p", "label": "p", "field": "p"}], rows=[],
                                              row_key="token").props("dense flat")
            ui.label("The three components, each as its own strip (darker = larger share; hover for raw values): "
                     "M gate (attention flow), S curvature (second-order sensitivity), I information "
                     "(what masking the token costs)").classes("font-medium")
            self.strips = ui.html("", sanitize=False).classes("w-full").mark("strips")
            self.settings_label = ui.label("").classes("text-xs text-gray-600")
            with ui.row():
                ui.button("Download JSON report", on_click=self.download_json).props("outline id=dl-json")
                ui.button("Download PNG heatmap", on_click=self.download_png).props("outline id=dl-png")
        self.card.set_visibility(False)

    def show(self, exp) -> None:
        from heta_lite.report import Report

        report = Report.from_explanation(exp).to_dict()
        self.ps.exp, self.ps.report, self.ps.last_peak = exp, report, exp.memory
        tgt = report["target"]
        self.summary.text = (f"Why '{tgt['display']}'? p = {tgt['prob']:.3f} (rank {tgt['rank']}). "
                             f"Darker = more influential; hover a token for its numbers.")
        self.heat.content = heatmap_html(report)
        self.check_line.content = check_html(report)
        self.risk_line.content = risk_html(report)
        self.long_input.show(report)
        self.top_table.rows = [{"rank": t["rank"], "token": t["display"], "score": f"{t['normalised']:.1%}",
                                "pct": f"{t['percentile']:.0f}"}
                               for t in sorted((t for t in report["tokens"] if t["rank"]),
                                               key=lambda t: t["rank"])[:10]]
        self.alt_table.rows = [{"token": a["text"], "p": f"{a['prob']:.3f}"} for a in tgt["alternatives"]]
        self.strips.content = strips_html(report)
        st = report["settings"]
        self.settings_label.text = (
            f"Settings: method {report['method']} · quality {st['quality']} "
            f"({st['estimator']}, m={st['num_probes']}, mask {st['mask']}, KL "
            f"{st.get('information')}) · gate {st['gate']} · frame {st['frame']} · model {report['model']['name']} "
            f"({report['model']['quantization']}) · took "
            f"{report['timings_s'].get('attribution_total', 0):.1f} s · peak RSS "
            f"{report['memory']['peak_rss_bytes'] / 2**20:.0f} MiB"
            + (" · " + "; ".join(report["notes"]) if report.get("notes") else ""))
        self.card.set_visibility(True)
        self.on_shown(report)

    def download_json(self) -> None:
        from heta_lite.report import dumps

        if self.ps.report is not None:
            ui.download.content(dumps(self.ps.report).encode("utf-8"), "heta-report.json", "application/json")

    def download_png(self) -> None:
        from heta_lite.render import render_heatmap

        if self.ps.report is not None:
            ui.download.content(render_heatmap(self.ps.report), "heta-heatmap.png", "image/png")
