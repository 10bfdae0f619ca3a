"""A self-contained HTML rendering of a drift report: no scripts, no external files, works offline.

Inline CSS and one small inline SVG per feature (reference vs current shares over 20 reference-quantile bins or
the 12 largest categories, every bar labelled) keep it small: about 6 KB per feature, well under 1 MB for 50
features. The report indexes list a model's windows and every model, each linking its pages relatively.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:12px 0}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;
vertical-align:top}
.drift{color:#b00020;font-weight:600}.ok{color:#1b7f3b}.na{color:#777}
.how{max-width:26em;font-size:12px;color:#444}
.meta{color:#444}.feature{display:inline-block;margin:8px 16px 8px 0;vertical-align:top}
.caption{font-size:12px;color:#555;max-width:60em}.num{white-space:nowrap}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
"""
_REFERENCE, _CURRENT = "#8da0cb", "#fc8d62"
# Readable names of the built-in tests and of a small window's gross-change checks (a custom test keeps its name).
_TEST_NAMES = {
    "ks": "Kolmogorov–Smirnov test",
    "cramer_von_mises": "Cramér–von Mises test",
    "anderson_darling": "Anderson–Darling test",
    "mann_whitney": "Mann–Whitney U test",
    "wasserstein": "Wasserstein distance",
    "energy": "energy distance",
    "psi": "population stability index",
    "kl_divergence": "Kullback–Leibler divergence",
    "jensen_shannon": "Jensen–Shannon distance",
    "hellinger": "Hellinger distance",
    "total_variation": "total variation distance",
    "chisquare": "chi-square test of homogeneity",
    "g_test": "G-test of homogeneity",
    "z_test": "two-proportion z-test",
    "fisher_exact": "Fisher's exact test",
    "out_of_range": "values outside the reference's range",
    "unseen_categories": "categories the reference never had",
    "missing_share": "share of missing values",
}
_EFFECT_MEASURES = {
    "wasserstein (reference sd)": "Wasserstein distance in reference standard deviations",
    "total_variation": "total variation: the share of the distribution that moved",
}
_GROSS_CHECKS = ("out_of_range", "unseen_categories", "missing_share")
_TICK_CHARACTERS = 12  # a category's tick label is cut to this (the bar's tooltip has it whole)


def _head(title: str) -> str:
    """The page's head: its title and style; an empty icon, so that no browser asks the server for a
    ``favicon.ico`` that a storage folder or bucket does not have (an error in its console)."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<link rel='icon' href='data:,'><style>{_CSS}</style></head>"
    )


def _format(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def _tick_labels(plot: Mapping[str, Any], labels: list[str]) -> list[str]:
    """The label under each bar: a category, or a bin's upper edge (``≤x``); the top bin of a numeric feature is
    open above (it holds whatever exceeds the edge below it, values beyond the reference's maximum too), so it
    reads ``>x``."""
    if plot.get("kind") != "bins" or len(labels) < 2 or not labels[-2].startswith("≤"):
        return labels
    return [*labels[:-1], ">" + labels[-2].removeprefix("≤")]


def _svg(plot: Mapping[str, Any], width: int = 380, height: int = 120) -> str:
    """Reference and current shares side by side per bin or category, every bar labelled underneath (rotated,
    so 20 bins fit), the axis topped by the largest share. Bins empty on both sides are left out: a repeated
    value fills several of the engine's equal-mass bins and leaves the others empty."""
    raw_labels = [str(label) for label in plot.get("labels", [])]
    bars = [
        (label, float(r), float(c))
        for label, r, c in zip(
            _tick_labels(plot, raw_labels), plot.get("reference", []), plot.get("current", []), strict=True
        )
        if r or c
    ]
    if not bars:
        return ""
    top = max(max(r, c) for _, r, c in bars) or 1.0
    left, label_room = 34, 64
    slot = (width - left) / len(bars)
    bar = max(min(slot / 2 - 1, 14), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + label_room}" role="img">',
        f'<line x1="{left}" y1="{height}" x2="{width}" y2="{height}" stroke="#999"/>',
        f'<line x1="{left}" y1="0" x2="{left}" y2="{height}" stroke="#999"/>',
        f'<text x="{left - 3}" y="10" font-size="10" text-anchor="end">{top:.0%}</text>',
        f'<text x="{left - 3}" y="{height}" font-size="10" text-anchor="end">0%</text>',
    ]
    for i, (label, reference, current) in enumerate(bars):
        x = left + i * slot + (slot - 2 * bar) / 2
        name = html.escape(label)
        for offset, share, colour, side in (
            (0.0, reference, _REFERENCE, "reference"),
            (bar, current, _CURRENT, "current"),
        ):
            h = share / top * height
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{name}: {side} {share:.1%}</title></rect>"
            )
        shown = label if len(label) <= _TICK_CHARACTERS else label[: _TICK_CHARACTERS - 1] + "…"
        centre = left + (i + 0.5) * slot
        parts.append(
            f'<g><title>{name}</title><text class="tick" x="{centre:.1f}" y="{height + 6}" font-size="10" '
            f'text-anchor="end" dominant-baseline="middle" transform="rotate(-90 {centre:.1f} {height + 6})">'
            f"{html.escape(shown)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


_VERDICTS = {
    "drift": ("drift", "drift"),
    "minor": ("minor (below effect floor)", "ok"),
    "no_drift": ("no drift", "ok"),
    "insufficient_data": ("insufficient data", "na"),
}


def _verdict(feature: Mapping[str, Any]) -> tuple[str, str]:
    verdict = feature.get("verdict")
    if verdict is None:  # a report of before 2026-12
        drifted = feature.get("drifted")
        verdict = "drift" if drifted else ("no_drift" if drifted is False else "insufficient_data")
    return _VERDICTS.get(str(verdict), (str(verdict), "na"))


def effect_text(feature: Mapping[str, Any]) -> str:
    """The effect against its floor in words, e.g. ``0.3215 ≥ 0.02, reaches the floor``. Pure.

    >>> effect_text({"effect": 0.3215, "effect_floor": 0.02})
    '0.3215 ≥ 0.02, reaches the floor'
    >>> effect_text({"effect": 0.0558, "effect_floor": 0.1})
    '0.0558 < 0.1, below the floor'
    """
    effect, floor = feature.get("effect"), feature.get("effect_floor")
    if effect is None:
        return "–"
    if floor is None:  # a configured distance test: its own threshold decides
        return f"{_format(effect)} (a distance test: judged by its threshold)"
    if effect >= floor:
        return f"{_format(effect)} ≥ {_format(floor)}, reaches the floor"
    return f"{_format(effect)} < {_format(floor)}, below the floor"


def how_computed(feature: Mapping[str, Any]) -> str:
    """How a feature's figures were computed, in words: the test, what it ran on (the report's ``approximation``
    when the figure came from a profile's bins or bounded samples, else the values or counts it read) and the
    effect's measure. Pure.

    >>> how_computed({"test": "ks", "status": "ok", "approximation": None, "feature_type": "numeric",
    ...               "reference_size": 4000, "current_size": 1500, "effect_measure": None})
    'Kolmogorov–Smirnov test, exact, on all 4,000 reference and 1,500 current values.'
    >>> how_computed({"test": "chisquare", "status": "ok", "approximation": "on 10 bins of the reference",
    ...               "effect_measure": "total_variation"})  # doctest: +ELLIPSIS
    'chi-square test of homogeneity, on 10 bins of the reference. Effect: total variation: the share of ... moved.'
    """
    test = str(feature.get("test"))
    name = _TEST_NAMES.get(test, test)
    approximation = feature.get("approximation")
    reference_size, current_size = int(feature.get("reference_size") or 0), int(feature.get("current_size") or 0)
    if test in _GROSS_CHECKS and approximation:  # a small window: the engine says which check decided and why
        computed = str(approximation)
    elif feature.get("status") == "insufficient_data":
        return f"Not tested: {current_size:,} values in the window are too few for {name}."
    elif approximation:
        computed = f"{name}, {approximation}"
    elif _reads_counts(test):
        unit = "category" if feature.get("feature_type") == "categorical" else "distinct value"
        computed = (
            f"{name}, on the counts of each {unit}: {reference_size:,} reference and {current_size:,} current values"
        )
    else:
        computed = f"{name}, exact, on all {reference_size:,} reference and {current_size:,} current values"
    measure = feature.get("effect_measure")
    if measure and measure != test:
        computed += f". Effect: {_effect_words(str(measure))}"
    return computed + "."


def _effect_words(measure: str) -> str:
    check = measure.removesuffix(" excess share")
    if check != measure and check in _GROSS_CHECKS:
        return f"the share of {_TEST_NAMES[check]} beyond what the reference predicts"
    return _EFFECT_MEASURES.get(measure, measure)


def _reads_counts(test: str) -> bool:
    """Whether ``test`` runs on counts (categories or bins) rather than on values; a test this process does not
    know (a custom one registered elsewhere) is taken to read values."""
    from driftline.detectors.registry import available_tests

    known = available_tests().get(test)
    return known is not None and known.input_kind == "counts"


def _multivariate_html(joint: Mapping[str, Any] | None) -> str:
    if not joint or joint.get("status") == "off":
        return ""
    if joint.get("status") != "ok":
        return f"<h2>Features together</h2><p class='na'>{html.escape(str(joint.get('message', '')))}</p>"
    verdict, css = _verdict(joint)
    return (
        "<h2>Features together (multivariate)</h2>"
        f"<p class='{css}'><b>{verdict}</b>: {html.escape(str(joint['message']))}; {joint['test']} "
        f"p={_format(joint['p_value'], 3)} (threshold {_format(joint['threshold'], 3)}), effect "
        f"{effect_text(joint)}.</p>"
    )


def _model_line(report: Mapping[str, Any]) -> str:
    """What was checked: the model and its version(s) and window (a check of the drift DAG), or the files compared
    (``driftline check``, whose report names a model when a config gave one)."""
    parts = []
    if report.get("model"):
        parts.append(f"Model <b class='model'>{html.escape(str(report['model']))}</b>")
    versions = [str(v) for v in report.get("model_versions") or []]
    if versions:
        label = "version" if len(versions) == 1 else "versions"
        parts.append(f"{label} <b class='version'>{html.escape(', '.join(versions))}</b>")
    if report.get("window_start"):
        parts.append(f"window {html.escape(str(report['window_start']))} → {html.escape(str(report['window_end']))}")
    if report.get("reference") and report.get("current"):
        parts.append(
            f"reference <code>{html.escape(str(report['reference']))}</code>, "
            f"current <code>{html.escape(str(report['current']))}</code>"
        )
    if report.get("current_rows") is not None and report.get("reference_rows") is not None:
        parts.append(f"{report['current_rows']:,} rows against {report['reference_rows']:,} reference rows")
    if report.get("generated_at"):
        parts.append(f"checked {html.escape(str(report['generated_at']))[:19].replace('T', ' ')} UTC")
    return f"<p class='meta'>{' · '.join(parts)}</p>" if parts else ""


def _actions_line(report: Mapping[str, Any]) -> str:
    """What the drift DAG did about the window: alerts raised or held back by the cooldown, a retrain requested or
    why not. A report of ``driftline check`` has none of these fields and gets no line."""
    if "alert" not in report:
        return ""
    held = report.get("alerts_held_back") or {}
    raised = [_KIND_NAMES.get(kind, kind) for kind in window_alert_kinds(report) if kind not in held]
    parts = [html.escape(f"alert raised: {', '.join(raised)}" if raised else "no alert raised")]
    parts += [
        f"{html.escape(_KIND_NAMES.get(kind, kind))} alert held back ({html.escape(str(why))})"
        for kind, why in held.items()
    ]
    if report.get("retrain_requested"):
        parts.append("retrain requested")
    elif report.get("retrain_not_requested"):
        parts.append(f"retrain not requested: {html.escape(str(report['retrain_not_requested']))}")
    return f"<p class='actions'>What driftline did: {'; '.join(parts)}.</p>"


# The kinds of alert a window can raise, in the order the indexes list them, and their words.
_KIND_NAMES = {
    "drift": "drift",
    "production_drift": "production drift",
    "quality": "quality",
    "performance": "performance",
    "insufficient_data": "insufficient data",
}


def window_alert_kinds(report: Mapping[str, Any]) -> list[str]:
    """The kinds of alert a stored report says its window raised or had held back: ``drift`` (``alert``),
    ``quality`` (``quality_alert``), ``performance`` (realized performance degraded) and any kind held back by the
    cooldown. Pure. A window's production-drift and insufficient-data alerts depend on its config and are
    known from the outbox (:func:`render_report_index`'s ``sent``), not from the report."""
    realized = (report.get("performance") or {}).get("realized") or {}
    asked = {
        "drift": bool(report.get("alert")),
        "quality": bool(report.get("quality_alert")),
        "performance": realized.get("status") == "degraded",
    }
    held = report.get("alerts_held_back") or {}
    return [kind for kind in _KIND_NAMES if asked.get(kind) or kind in held]


def render_html(report: dict[str, Any]) -> str:
    """The report's page, from its JSON form: what was checked (model, version, window or files), the verdict and
    what was done, a row per feature (test, figures, effect against its floor, verdict, how it was computed), the
    other sections, and a labelled histogram per feature. A report of the drift DAG links its model's index,
    written beside it. Pure."""
    features = sorted(report["features"], key=lambda f: -f.get("severity", -1))
    title = f"Drift report{' — ' + html.escape(str(report['model'])) if report.get('model') else ''}"
    rows = []
    for f in features:
        verdict, css = _verdict(f)
        measure = f.get("effect_measure")
        rows.append(
            f"<tr><td>{html.escape(f['feature'])}</td><td>{f['feature_type']}</td><td>{html.escape(str(f['test']))}"
            f"</td><td class='num'>{_format(f['statistic'])}</td><td class='num'>{_format(f['p_value'], 3)}</td>"
            f"<td class='num'>{_format(f['threshold'], 3)}</td>"
            f"<td class='effect num' title='{html.escape(str(measure or ''))}'>{effect_text(f)}</td>"
            f"<td class='{css}'>{verdict}</td><td>{f['reference_size']:,} / {f['current_size']:,}</td>"
            f"<td class='how'>{html.escape(how_computed(f))}</td></tr>"
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
    index_link = ""
    if report.get("model") and report.get("window_end") and "alert" in report:
        index_link = f"<p><a href='index.html'>every report of {html.escape(str(report['model']))}</a></p>"
    performance = _performance_html(report.get("performance"))
    production = _production_html(report.get("production_drift"))
    segments = _segments_html(report.get("segments"))
    plots = "".join(
        f"<div class='feature'><b>{html.escape(f['feature'])}</b> "
        f"<span class='{_verdict(f)[1]}'>{_verdict(f)[0]}</span><br>"
        f"{_svg(f.get('plot') or {})}</div>"
        for f in features
    )
    return (
        f"{_head(title)}<body>"
        f"<h1>{title}</h1>{_model_line(report)}{index_link}{verdict_line}{_actions_line(report)}"
        "<h2>Skew: against the training reference</h2>"
        f"<p><b>{len(report['drifted_features'])}</b> of {len(features)} features drifted "
        f"(share {report['share_drifted']:.0%}; α = {report['alpha']}, correction: {report['correction']}). "
        "A feature drifts when its p-value is at most the threshold (α after the correction) and its effect reaches "
        "the floor.</p>"
        "<table><tr><th>feature</th><th>type</th><th>test</th><th>statistic</th><th>p-value</th><th>threshold</th>"
        f"<th>effect vs floor</th><th>verdict</th><th>rows ref / cur</th><th>how computed</th></tr>{''.join(rows)}"
        f"</table>{not_tested}{_multivariate_html(report.get('multivariate'))}{production}{segments}{performance}"
        f"<h2>Data quality</h2>{'<ul>' + quality + '</ul>' if quality else '<p>No issues.</p>'}"
        f"<h2>Distributions</h2><p class='legend'><span style='background:{_REFERENCE}'></span>reference"
        f"<span style='background:{_CURRENT}'></span>current</p><p class='caption'>Each bar is a share of its side's "
        "rows. A numeric feature has 20 bins that each hold an equal share of the reference (so its reference bars "
        "are level), labelled by their upper edge; the last bin holds everything above the edge before it. A "
        f"categorical feature shows its 12 largest categories.</p>{plots}</body></html>"
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


def _alerts_cell(report: Mapping[str, Any], sent: Sequence[str] | None) -> str:
    """A window's alerts, each with what became of it: ``sent`` (delivered, per the outbox), ``held back`` (by the
    cooldown; the reason on hover), or ``not delivered yet`` (raised, still in the outbox); ``raised`` when the
    outbox was not read. ``none`` without any."""
    held = report.get("alerts_held_back") or {}
    kinds = [kind for kind in _KIND_NAMES if kind in window_alert_kinds(report) or kind in (sent or ())]
    shown = []
    for kind in kinds:
        name = html.escape(_KIND_NAMES[kind])
        if kind in held:
            shown.append(f"<span class='na' title='{html.escape(str(held[kind]))}'>{name}: held back (cooldown)</span>")
        elif sent is None:
            shown.append(f"{name}: raised")
        elif kind in sent:
            shown.append(f"{name}: sent")
        else:
            shown.append(f"<span class='drift'>{name}: not delivered yet</span>")
    return "<br>".join(shown) or "none"


def render_report_index(
    model: str, reports: list[dict[str, Any]], older: int = 0, *, sent: Mapping[str, Sequence[str]] | None = None
) -> str:
    """One model's reports, newest window first: window, model version(s), verdict, drifted features, rows,
    alerts, and a link to each HTML report (relative, so the page works on a local disk and on a static bucket
    alike). ``reports`` are the JSON reports, newest first; ``older`` counts those left out; ``sent`` maps a
    window's end (as the report writes it) to the kinds of alert delivered for it. Pure."""
    rows = []
    for report in reports:
        verdict = str(report.get("verdict") or ("drift" if report.get("drifted_features") else "no_drift"))
        css = {"drift": "drift", "quality_incident": "drift", "no_drift": "ok"}.get(verdict, "na")
        end = str(report.get("window_end", ""))
        name = f"drift-{_stamp(end)}.html"
        drifted = report.get("drifted_features") or []
        versions = ", ".join(str(v) for v in report.get("model_versions") or []) or "–"
        delivered = None if sent is None else sent.get(end, ())
        rows.append(
            f"<tr><td><a href='{html.escape(name)}'>{html.escape(str(report.get('window_start', '')))} → "
            f"{html.escape(end)}</a></td><td class='version'>{html.escape(versions)}</td>"
            f"<td class='{css}'>{html.escape(verdict.replace('_', ' '))}</td>"
            f"<td>{len(drifted)}{': ' + html.escape(', '.join(drifted[:6])) if drifted else ''}"
            f"{' …' if len(drifted) > 6 else ''}</td><td>{_format(report.get('current_rows'))}</td>"
            f"<td class='alerts'>{_alerts_cell(report, delivered)}</td></tr>"
        )
    more = f"<p>{older} older report(s) are in this folder and not listed.</p>" if older else ""
    title = f"Drift reports — {html.escape(model)}"
    return (
        f"{_head(title)}<body>"
        f"<h1>{title}</h1><p><a href='../index.html'>all models</a></p><p>{len(reports)} window(s), newest first. "
        "An alert is sent once per window and kind; the cooldown holds back one of a kind already sent for a "
        "nearby window (hover for which).</p>"
        "<table><tr><th>window</th><th>model version</th><th>verdict</th><th>drifted features</th><th>rows</th>"
        f"<th>alerts</th></tr>{''.join(rows)}</table>{more}</body></html>"
    )


def render_models_index(latest: dict[str, dict[str, Any] | None]) -> str:
    """Every model with reports, each with its newest window's verdict and version(s) and a link to its index.
    Pure."""
    rows = []
    for model, report in sorted(latest.items()):
        verdict = str((report or {}).get("verdict") or "–")
        css = {"drift": "drift", "quality_incident": "drift", "no_drift": "ok"}.get(verdict, "na")
        end = html.escape(str((report or {}).get("window_end", "–")))
        versions = ", ".join(str(v) for v in (report or {}).get("model_versions") or []) or "–"
        rows.append(
            f"<tr><td><a href='model={html.escape(model)}/index.html'>{html.escape(model)}</a></td><td>{end}</td>"
            f"<td class='version'>{html.escape(versions)}</td>"
            f"<td class='{css}'>{html.escape(verdict.replace('_', ' '))}</td></tr>"
        )
    return (
        f"{_head('driftline reports')}<body><h1>driftline reports</h1><table><tr><th>model</th>"
        f"<th>newest window ends</th><th>model version</th><th>verdict</th></tr>{''.join(rows)}</table></body></html>"
    )


def _stamp(iso: str) -> str:
    """``2026-05-01T07:00:00+00:00`` → ``20260501T070000Z``, as report files are named."""
    from datetime import UTC, datetime

    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
