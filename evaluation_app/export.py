"""A comparison report as something to keep or send: ONE self-contained HTML file and a Markdown document.

``report_sections`` turns the report's summary into what both the report page and the exports show (rows, flags,
inline SVG charts), so the page and the export cannot drift apart. The HTML export inlines the portal's
stylesheet and the report's, draws its charts as inline SVG (evaluation_app.charts) and has no script, no image
and no link to another file: it opens the same from a mail attachment as from the portal. Both exports carry the
leakage warning and the forgetting flag first, before any number.
"""

from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from django.utils import timezone

from evaluation_app.charts import bars_chart, delta_chart
from evaluation_app.models import CaseOutcome, ComparisonReport

STYLESHEETS = ("css/app.css", "evaluation_app/report.css")


def report_sections(report: ComparisonReport) -> dict:
    summary = report.summary or {}
    leakage = summary.get("leakage") or {}
    cases = summary.get("cases") or {}
    return {
        "summary": summary,
        "untrustworthy": report.untrustworthy,
        "leakage": leakage,
        "forgetting": summary.get("forgetting") or {},
        "metrics": summary.get("metrics") or [],
        "mcnemar": summary.get("mcnemar"),
        "outcomes": summary.get("outcomes") or {},
        "cases": [(value, value.replace("_", " "), cases.get(value, 0)) for value in CaseOutcome.values],
        "has_cases": any(cases.values()) if cases else False,
        "by_category": summary.get("by_category") or [],
        "by_tag": summary.get("by_tag") or [],
        "efficiency": summary.get("efficiency") or [],
        "judge_errors": summary.get("judge_errors") or {},
        "robustness": summary.get("robustness") or {},
        "delta_svg": delta_chart(summary.get("metrics") or []),
        "category_svg": bars_chart(summary.get("by_category") or [], "Score by category"),
        "tag_svg": bars_chart(summary.get("by_tag") or [], "Score by tag"),
    }


def _stylesheet() -> str:
    parts = []
    for name in STYLESHEETS:
        path = finders.find(name)
        if path:
            with open(path, encoding="utf-8") as f:
                parts.append(f.read())
    return "\n".join(parts)


def report_html(report: ComparisonReport) -> str:
    context = {"report": report, "s": report_sections(report), "export": True, "css": _stylesheet(),
               "exported_at": timezone.now()}  # fmt: skip
    return render_to_string("evaluation_app/report_export.html", context)


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "—"
    return _text(str(value)).replace("|", "\\|").replace("\n", " ")


def _text(value: str) -> str:
    """User-written text in Markdown: HTML is shown, never rendered (a Markdown viewer may pass raw HTML on)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _table(headers: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _warnings(report: ComparisonReport, s: dict) -> list[str]:
    lines = []
    if s["untrustworthy"]:
        lines += [f"> **WARNING — untrustworthy:** {s['leakage'].get('count', 0)} test examples were found in the "
                  f"candidate's training data ({s['leakage'].get('exact', 0)} exact, {s['leakage'].get('near', 0)} "
                  "near). Treat every number below as optimistic.", ""]  # fmt: skip
    forgetting = s["forgetting"]
    if report.forgetting_flagged:
        lines += [f"> **FORGETTING:** the general-capability score dropped by {_cell(forgetting.get('drop'))} "
                  f"(threshold {_cell(forgetting.get('threshold'))}).", ""]  # fmt: skip
    return lines


def report_markdown(report: ComparisonReport) -> str:
    s = report_sections(report)
    mark = " (untrustworthy)" if s["untrustworthy"] else ""
    lines = [f"# Comparison report #{report.pk}{': ' + _text(report.name) if report.name else ''}", "",
             f"- Baseline: run #{report.baseline_id}, {_text(str(report.baseline.model_version))} on "
             f"{_text(report.baseline.source_label)}",
             f"- Candidate: run #{report.candidate_id}, {_text(str(report.candidate.model_version))} on "
             f"{_text(report.candidate.source_label)}",
             f"- Status: {report.status}; examples: {s['summary'].get('examples', '—')}", ""]  # fmt: skip
    lines += _warnings(report, s)
    lines += ["## Metrics" + mark, ""]
    lines += _table(["metric", "baseline", "candidate", "delta", "95% CI", "p", "method"],
                    [[m.get("name"), m.get("baseline"), m.get("candidate"), m.get("delta"),
                      f"[{_cell(m.get('low'))}, {_cell(m.get('high'))}]", m.get("p_value"), m.get("method")]
                     for m in s["metrics"]])  # fmt: skip
    outcomes = s["outcomes"]
    lines += ["## Wins, losses, ties", ""]
    lines += _table(
        ["win", "loss", "tie"], [[outcomes.get("win", 0), outcomes.get("loss", 0), outcomes.get("tie", 0)]]
    )
    if s["mcnemar"]:
        m = s["mcnemar"]
        lines += [f"McNemar ({m.get('method')}): fixed {m.get('fixed')}, broken {m.get('broken')}, "
                  f"statistic {_cell(m.get('statistic'))}, p = {_cell(m.get('p_value'))}", ""]  # fmt: skip
    if s["has_cases"]:
        lines += ["## Error cases", ""] + _table(
            [label for _, label, _ in s["cases"]], [[n for *_, n in s["cases"]]]
        )
    forgetting = s["forgetting"]
    if forgetting.get("checked"):
        lines += ["## Forgetting (general-capability pack)", ""]
        rows = [["overall", forgetting.get("baseline"), forgetting.get("candidate"), forgetting.get("drop"),
                 forgetting.get("flagged")]]  # fmt: skip
        rows += [[r.get("name"), r.get("baseline"), r.get("candidate"), r.get("drop"), r.get("flagged")]
                 for r in forgetting.get("by_category") or []]  # fmt: skip
        lines += _table(["category", "baseline", "candidate", "drop", "flagged"], rows)
    for title, key in (("By category", "by_category"), ("By tag", "by_tag")):
        if s[key]:
            lines += [f"## {title}", ""]
            lines += _table(["name", "n", "baseline", "candidate", "delta"],
                            [[r.get("name"), r.get("n"), r.get("baseline"), r.get("candidate"), r.get("delta")]
                             for r in s[key]])  # fmt: skip
    if s["efficiency"]:
        lines += ["## Efficiency", ""]
        lines += _table(["measure", "baseline", "candidate", "delta", "ratio"],
                        [[r.get("name"), r.get("baseline"), r.get("candidate"), r.get("delta"), r.get("ratio")]
                         for r in s["efficiency"]])  # fmt: skip
    if s["leakage"].get("examples"):
        lines += ["## Leaked examples", ""]
        lines += _table(["position", "kind", "key"],
                        [[e.get("position"), e.get("kind"), str(e.get("key", ""))[:12]] for e in s["leakage"]["examples"]])  # fmt: skip
    return "\n".join(lines).rstrip() + "\n"
