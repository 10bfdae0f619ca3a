"""A self-contained HTML rendering of a drift report: no scripts, no external files, works offline.

Inline CSS and one small inline SVG per feature (reference vs current shares
over 20 reference-quantile bins or the 12 largest categories) keep it small:
about 5 KB per feature, well under 1 MB for 50 features.
"""

from __future__ import annotations

import html
from typing import Any

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:12px 0}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
.drift{color:#b00020;font-weight:600}.ok{color:#1b7f3b}.na{color:#777}
.feature{display:inline-block;margin:8px 16px 8px 0;vertical-align:top}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
"""
_REFERENCE, _CURRENT = "#8da0cb", "#fc8d62"


def _format(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def _svg(plot: dict[str, Any], width: int = 360, height: int = 120) -> str:
    labels, reference, current = plot.get("labels", []), plot.get("reference", []), plot.get("current", [])
    if not labels:
        return ""
    top = max(max(reference, default=0), max(current, default=0)) or 1.0
    slot = width / len(labels)
    bar = max(slot / 2 - 1, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 14}">']
    for i, (label, r, c) in enumerate(zip(labels, reference, current, strict=True)):
        x = i * slot
        for offset, share, colour in ((0, r, _REFERENCE), (bar, c, _CURRENT)):
            h = share / top * height
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{html.escape(str(label))}: {share:.3%}</title></rect>"
            )
    parts.append(f'<text x="0" y="{height + 12}" font-size="10">{html.escape(str(labels[0]))}</text>')
    parts.append(
        f'<text x="{width}" y="{height + 12}" font-size="10" text-anchor="end">{html.escape(str(labels[-1]))}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


_VERDICTS = {
    "drift": ("drift", "drift"),
    "minor": ("minor (below effect floor)", "ok"),
    "no_drift": ("no drift", "ok"),
    "insufficient_data": ("insufficient data", "na"),
}


def _verdict(feature: dict[str, Any]) -> tuple[str, str]:
    verdict = feature.get("verdict")
    if verdict is None:  # a report of before 2026-12
        drifted = feature.get("drifted")
        verdict = "drift" if drifted else ("no_drift" if drifted is False else "insufficient_data")
    return _VERDICTS.get(str(verdict), (str(verdict), "na"))


def _multivariate_html(joint: dict[str, Any] | None) -> str:
    if not joint or joint.get("status") == "off":
        return ""
    if joint.get("status") != "ok":
        return f"<h2>Features together</h2><p class='na'>{html.escape(str(joint.get('message', '')))}</p>"
    verdict, css = _verdict(joint)
    return (
        "<h2>Features together (multivariate)</h2>"
        f"<p class='{css}'><b>{verdict}</b>: {html.escape(str(joint['message']))}; {joint['test']} "
        f"p={_format(joint['p_value'], 3)} (threshold {_format(joint['threshold'], 3)}), effect "
        f"{_format(joint['effect'])} (floor {_format(joint['effect_floor'])}).</p>"
    )


def render_html(report: dict[str, Any]) -> str:
    features = sorted(report["features"], key=lambda f: -f.get("severity", -1))
    title = f"Drift report{' — ' + html.escape(str(report['model'])) if report.get('model') else ''}"
    rows = []
    for f in features:
        verdict, css = _verdict(f)
        effect = "–" if f.get("effect") is None else f"{_format(f['effect'])} ≥ {_format(f.get('effect_floor'))}?"
        rows.append(
            f"<tr><td>{html.escape(f['feature'])}</td><td>{f['feature_type']}</td><td>{f['test']}</td>"
            f"<td>{_format(f['statistic'])}</td><td>{_format(f['p_value'], 3)}</td>"
            f"<td>{_format(f['threshold'], 3)}</td><td title='{html.escape(str(f.get('effect_measure') or ''))}'>"
            f"{effect}</td>"
            f"<td class='{css}'>{verdict}</td><td>{f['reference_size']:,} / {f['current_size']:,}</td>"
            f"<td>{_format(f.get('approximation'))}</td></tr>"
        )
    quality = "".join(
        f"<li class='{'drift' if q.get('severity') == 'critical' else ''}'>"
        f"[{html.escape(q.get('severity', 'warning'))}] "
        f"<b>{html.escape(q['check'])}</b>: {html.escape(q['message'])}</li>"
        for q in report.get("quality", [])
    )
    quality += "".join(
        f"<li>[warning] <b>unreadable file moved to quarantine</b>: {html.escape(str(f['path']))} "
        f"({html.escape(str(f['reason']))}; at most {f.get('events_at_most') or '?'} events)</li>"
        for f in report.get("skipped_files", [])
    )
    verdict_line = ""
    if report.get("verdict") == "quality_incident":
        verdict_line = "<p class='drift'>Quality incident: a feature is gone for the whole window (Data quality).</p>"
    elif report.get("verdict") == "insufficient_data":
        names = ", ".join(html.escape(str(n)) for n in report.get("insufficient_data", []))
        verdict_line = f"<p class='na'>Insufficient data: no verdict for {names} (too few values); not 'no drift'.</p>"
    excluded = report.get("excluded_columns") or []
    not_tested = (
        "<p>Not tested (not features): "
        + "; ".join(f"<b>{html.escape(c['column'])}</b> ({html.escape(c['reason'])})" for c in excluded)
        + ".</p>"
        if excluded
        else ""
    )
    window = ""
    if report.get("window_start"):
        window = f"<p>Window {html.escape(str(report['window_start']))} → {html.escape(str(report['window_end']))}</p>"
    performance = _performance_html(report.get("performance"))
    production = _production_html(report.get("production_drift"))
    segments = _segments_html(report.get("segments"))
    plots = "".join(
        f"<div class='feature'><b>{html.escape(f['feature'])}</b> "
        f"<span class='{'drift' if f['drifted'] else 'ok'}'>{_format(f['statistic'])}</span><br>"
        f"{_svg(f.get('plot') or {})}</div>"
        for f in features
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head><body>"
        f"<h1>{title}</h1>{window}{verdict_line}<h2>Skew: against the training reference</h2>"
        f"<p><b>{len(report['drifted_features'])}</b> of {len(features)} features drifted "
        f"(share {report['share_drifted']:.0%}; α = {report['alpha']}, correction: {report['correction']}).</p>"
        "<table><tr><th>feature</th><th>type</th><th>test</th><th>statistic</th><th>p-value</th><th>threshold</th>"
        f"<th>effect ≥ floor</th><th>verdict</th><th>rows ref / cur</th><th>how computed</th></tr>{''.join(rows)}"
        f"</table>{not_tested}{_multivariate_html(report.get('multivariate'))}{production}{segments}{performance}"
        f"<h2>Data quality</h2>{'<ul>' + quality + '</ul>' if quality else '<p>No issues.</p>'}"
        f"<h2>Distributions</h2><p class='legend'><span style='background:{_REFERENCE}'></span>reference"
        f"<span style='background:{_CURRENT}'></span>current</p>{plots}</body></html>"
    )


def _drift_rows(features: list[dict[str, Any]]) -> str:
    rows = []
    for f in features:
        verdict, css = _verdict(f)
        rows.append(
            f"<tr><td>{html.escape(str(f['feature']))}</td><td>{f['test']}</td><td>{_format(f['statistic'])}</td>"
            f"<td>{_format(f['p_value'], 3)}</td><td>{_format(f['threshold'], 3)}</td>"
            f"<td class='{css}'>{verdict}</td></tr>"
        )
    return (
        "<table><tr><th>feature</th><th>test</th><th>statistic</th><th>p-value</th><th>threshold</th>"
        f"<th>verdict</th></tr>{''.join(rows)}</table>"
    )


def _production_html(section: dict[str, Any] | None) -> str:
    if not section or section.get("status") == "off":
        return ""
    head = "<h2>Drift: against the previous windows of production</h2>"
    if section.get("status") != "ok":
        return f"{head}<p class='na'>{html.escape(str(section.get('message', section.get('status'))))}</p>"
    windows = section["reference_windows"]
    return (
        f"{head}<p><b>{len(section['drifted_features'])}</b> of {len(section['features'])} features drifted "
        f"(share {section['share_drifted']:.0%}) against {section['reference_rows']:,} rows of the "
        f"{len(windows)} previous window(s) ending {html.escape(windows[-1])} to {html.escape(windows[0])}.</p>"
        f"{_drift_rows(section['features'])}"
    )


def _segments_html(segments: list[dict[str, Any]] | None) -> str:
    if not segments:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(str(s['feature']))} = {html.escape(str(s['value']))}</td>"
        f"<td>{s['reference_rows']:,} / {s['current_rows']:,}</td>"
        + (
            "<td class='na'>insufficient data</td>"
            if s["insufficient_data"]
            else f"<td class='{'drift' if s['drifted_features'] else 'ok'}'>"
            f"{html.escape(', '.join(s['drifted_features']) or 'no drift')}</td>"
        )
        + "</tr>"
        for s in segments
    )
    return (
        f"<h2>Segments</h2><p>Each segment against its own training rows, α = {_format(segments[0]['alpha'], 3)} "
        "per segment (shared across segments).</p>"
        f"<table><tr><th>segment</th><th>rows ref / cur</th><th>drifted features</th></tr>{rows}</table>"
    )


def _performance_html(section: dict[str, Any] | None) -> str:
    if not section:
        return ""
    realized, estimated = section.get("realized") or {}, section.get("estimated")
    parts = ["<h2>Performance</h2>"]
    if realized.get("status") == "insufficient_labels":
        parts.append(
            f"<p class='na'>Realized: {realized.get('labelled_rows', 0)} labelled rows so far, fewer than "
            f"{realized.get('min_labels')}: no verdict yet.</p>"
        )
    elif realized:
        degraded = {d["metric"] for d in realized.get("degraded", [])}
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td class='{'drift' if name in degraded else ''}'>{_format(m['value'])}"
            f"</td><td>{_format(m['ci_low'])} – {_format(m['ci_high'])}</td>"
            f"<td>{_format(realized.get('reference', {}).get(name))}</td></tr>"
            for name, m in realized.get("metrics", {}).items()
        )
        parts.append(
            f"<p>Realized on {realized['labelled_rows']:,} labelled rows: "
            f"<b class='{'drift' if degraded else 'ok'}'>{'degraded' if degraded else 'ok'}</b></p>"
            f"<table><tr><th>metric</th><th>value</th><th>95 % interval</th><th>reference</th></tr>{rows}</table>"
        )
    if estimated:
        parts.append(
            f"<p>Estimated before labels ({html.escape(estimated['method'])}): {estimated['metric']} "
            f"{_format(estimated['value'])} ({_format(estimated['ci_low'])} – {_format(estimated['ci_high'])})</p>"
        )
    return "".join(parts)


INDEX_LIMIT = 500  # windows listed per model: an index of years of hourly reports would be megabytes


def render_report_index(model: str, reports: list[dict[str, Any]], older: int = 0) -> str:
    """One model's reports, newest window first: window, verdict, drifted features, rows, alerts, and a link to
    each HTML report (relative, so the page works on a local disk and on a static bucket alike). ``reports``
    are the JSON reports, newest first; ``older`` counts those left out. Pure."""
    rows = []
    for report in reports:
        verdict = str(report.get("verdict") or ("drift" if report.get("drifted_features") else "no_drift"))
        css = {"drift": "drift", "quality_incident": "drift", "no_drift": "ok"}.get(verdict, "na")
        end = str(report.get("window_end", ""))
        name = f"drift-{_stamp(end)}.html"
        drifted = report.get("drifted_features") or []
        alerts = ", ".join(
            kind for kind, on in (("drift", report.get("alert")), ("quality", report.get("quality_alert"))) if on
        )
        held = ", ".join(report.get("alerts_held_back") or {})
        rows.append(
            f"<tr><td><a href='{html.escape(name)}'>{html.escape(str(report.get('window_start', '')))} → "
            f"{html.escape(end)}</a></td><td class='{css}'>{html.escape(verdict.replace('_', ' '))}</td>"
            f"<td>{len(drifted)}{': ' + html.escape(', '.join(drifted[:6])) if drifted else ''}"
            f"{' …' if len(drifted) > 6 else ''}</td><td>{_format(report.get('current_rows'))}</td>"
            f"<td>{html.escape(alerts) or '–'}{' (held back: ' + html.escape(held) + ')' if held else ''}</td></tr>"
        )
    more = f"<p>{older} older report(s) are in this folder and not listed.</p>" if older else ""
    title = f"Drift reports — {html.escape(model)}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head><body>"
        f"<h1>{title}</h1><p><a href='../index.html'>all models</a></p><p>{len(reports)} window(s), newest first.</p>"
        "<table><tr><th>window</th><th>verdict</th><th>drifted features</th><th>rows</th><th>alerts</th></tr>"
        f"{''.join(rows)}</table>{more}</body></html>"
    )


def render_models_index(latest: dict[str, dict[str, Any] | None]) -> str:
    """Every model with reports, each with its newest window's verdict and a link to its index. Pure."""
    rows = []
    for model, report in sorted(latest.items()):
        verdict = str((report or {}).get("verdict") or "–")
        css = {"drift": "drift", "quality_incident": "drift", "no_drift": "ok"}.get(verdict, "na")
        end = html.escape(str((report or {}).get("window_end", "–")))
        rows.append(
            f"<tr><td><a href='model={html.escape(model)}/index.html'>{html.escape(model)}</a></td><td>{end}</td>"
            f"<td class='{css}'>{html.escape(verdict.replace('_', ' '))}</td></tr>"
        )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>driftline reports</title><style>{_CSS}</style>"
        "</head><body><h1>driftline reports</h1><table><tr><th>model</th><th>newest window ends</th><th>verdict</th>"
        f"</tr>{''.join(rows)}</table></body></html>"
    )


def _stamp(iso: str) -> str:
    """``2026-05-01T07:00:00+00:00`` → ``20260501T070000Z``, as report files are named."""
    from datetime import UTC, datetime

    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
