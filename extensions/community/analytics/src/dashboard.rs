//! `GET /ext/analytics/dashboard`: one server-rendered HTML page, no scripts and no external
//! assets: views over time as an inline SVG bar chart with axes, a top-paths table, the status
//! mix and the custom events. Every text that came from a request is escaped.

use std::fmt::Write as _;

use crate::stats::{Bucket, Stats};

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A round axis maximum and tick step covering `max` in about five ticks (1, 2 or 5 × 10ⁿ).
fn axis(max: i64) -> (i64, i64) {
    let max = max.max(1);
    let rough = (max as f64 / 5.0).max(1.0);
    let magnitude = 10f64.powi(rough.log10().floor() as i32);
    let step =
        [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= rough).unwrap_or(rough) as i64;
    let step = step.max(1);
    ((max + step - 1) / step * step, step)
}

/// `2024-05-01T13:00:00Z` → `05-01 13:00` (hours) or `05-01` (days).
fn short_label(start: &str, bucket: Bucket) -> String {
    let date = start.get(5..10).unwrap_or(start);
    match bucket {
        Bucket::Hour => format!("{date} {}", start.get(11..16).unwrap_or("")),
        Bucket::Day => date.to_owned(),
    }
}

const CHART_W: f64 = 1100.0;
const CHART_H: f64 = 320.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 64.0;

fn views_chart(stats: &Stats) -> String {
    let mut svg = String::new();
    let (plot_w, plot_h) = (CHART_W - LEFT - RIGHT, CHART_H - TOP - BOTTOM);
    let max = stats.views.iter().map(|b| b.views).max().unwrap_or(0);
    let (top, step) = axis(max);
    let n = stats.views.len().max(1);
    let slot = plot_w / n as f64;
    let bar = (slot * 0.8).max(1.0);
    let y = |v: i64| TOP + plot_h - (v as f64 / top as f64) * plot_h;
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_W} {CHART_H}" width="{CHART_W}" height="{CHART_H}" role="img" aria-labelledby="views-title"><title id="views-title">Page views per {bucket}</title>"##,
        bucket = stats.bucket.as_str()
    );
    // Horizontal grid lines and y tick labels.
    let mut tick = 0;
    while tick <= top {
        let ty = y(tick);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{x2}" y2="{ty:.1}" stroke="#e3e6ea"/><text x="{tx}" y="{ly:.1}" text-anchor="end" font-size="12" fill="#444">{tick}</text>"##,
            x2 = CHART_W - RIGHT,
            tx = LEFT - 8.0,
            ly = ty + 4.0
        );
        tick += step;
    }
    // Bars, each with a tooltip; counts above bars when they fit.
    let label_every = n.div_ceil(12);
    for (i, b) in stats.views.iter().enumerate() {
        let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
        let top_y = y(b.views);
        let label = short_label(&b.start, stats.bucket);
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{top_y:.1}" width="{bar:.1}" height="{h:.1}" fill="#3b6fd8"><title>{label}: {v} views</title></rect>"##,
            h = (TOP + plot_h - top_y).max(0.0),
            label = escape(&label),
            v = b.views
        );
        if b.views > 0 && slot >= 22.0 {
            let _ = write!(
                svg,
                r##"<text x="{cx:.1}" y="{ly:.1}" text-anchor="middle" font-size="11" fill="#1d3f8a">{v}</text>"##,
                cx = x + bar / 2.0,
                ly = top_y - 4.0,
                v = b.views
            );
        }
        if i % label_every == 0 {
            let (cx, ly) = (x + bar / 2.0, TOP + plot_h + 18.0);
            let _ = write!(
                svg,
                r##"<line x1="{cx:.1}" y1="{t0:.1}" x2="{cx:.1}" y2="{t1:.1}" stroke="#444"/><text x="{cx:.1}" y="{ly:.1}" text-anchor="middle" font-size="12" fill="#444">{label}</text>"##,
                t0 = TOP + plot_h,
                t1 = TOP + plot_h + 5.0,
                label = escape(&label)
            );
        }
    }
    // Axes and their titles.
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#222"/><line x1="{LEFT}" y1="{base}" x2="{right}" y2="{base}" stroke="#222"/><text x="{mid}" y="{xt}" text-anchor="middle" font-size="13" fill="#222">Time (UTC, one bar per {bucket})</text><text transform="translate(16 {ymid}) rotate(-90)" text-anchor="middle" font-size="13" fill="#222">Page views</text></svg>"##,
        base = TOP + plot_h,
        right = CHART_W - RIGHT,
        mid = LEFT + plot_w / 2.0,
        xt = CHART_H - 12.0,
        ymid = TOP + plot_h / 2.0,
        bucket = stats.bucket.as_str()
    );
    svg
}

fn percent(part: i64, whole: i64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

fn status_mix(stats: &Stats) -> String {
    let s = stats.status;
    let classes = [
        ("2xx", s.ok, "#2e9e5b"),
        ("3xx", s.redirect, "#3b6fd8"),
        ("4xx", s.client_error, "#e0a100"),
        ("5xx", s.server_error, "#d64541"),
    ];
    let whole: i64 = classes.iter().map(|c| c.1).sum();
    let mut out = String::from(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 600 28" width="600" height="28" role="img" aria-label="Status mix"><rect x="0" y="0" width="600" height="28" fill="#eef0f3"/>"##,
    );
    let mut x = 0.0;
    for (name, count, color) in classes {
        let w = percent(count, whole) * 6.0;
        if w > 0.0 {
            let _ = write!(
                out,
                r##"<rect x="{x:.1}" y="0" width="{w:.1}" height="28" fill="{color}"><title>{name}: {count}</title></rect>"##
            );
        }
        x += w;
    }
    out.push_str("</svg><table><thead><tr><th>Status</th><th class=\"n\">Responses</th><th class=\"n\">Share</th></tr></thead><tbody>");
    for (name, count, color) in classes {
        let _ = write!(
            out,
            r##"<tr><td><span class="swatch" style="background:{color}"></span>{name}</td><td class="n">{count}</td><td class="n">{p:.1}%</td></tr>"##,
            p = percent(count, whole)
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn top_paths(stats: &Stats) -> String {
    if stats.top_paths.is_empty() {
        return "<p class=\"empty\">No page views in this window.</p>".to_owned();
    }
    let mut out = String::from(
        "<table><thead><tr><th>Route</th><th class=\"n\">Views</th><th>Share</th><th class=\"n\">Avg time</th></tr></thead><tbody>",
    );
    for p in &stats.top_paths {
        let share = percent(p.views, stats.total_views);
        let _ = write!(
            out,
            r##"<tr><td><code>{route}</code></td><td class="n">{views}</td><td><span class="share"><span style="width:{share:.1}%"></span></span> {share:.1}%</td><td class="n">{ms:.2} ms</td></tr>"##,
            route = escape(&p.route),
            views = p.views,
            ms = p.avg_ms
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn agents(stats: &Stats) -> String {
    if stats.agents.is_empty() {
        return "<p class=\"empty\">No page views in this window.</p>".to_owned();
    }
    let mut out = String::from(
        "<table><thead><tr><th>Client</th><th class=\"n\">Views</th><th class=\"n\">Share</th></tr></thead><tbody>",
    );
    for a in &stats.agents {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{:.1}%</td></tr>"#,
            escape(&a.agent),
            a.views,
            percent(a.views, stats.total_views)
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn events(stats: &Stats) -> String {
    if stats.events.is_empty() {
        return "<p class=\"empty\">No custom events in this window.</p>".to_owned();
    }
    let mut out =
        String::from("<table><thead><tr><th>Event</th><th class=\"n\">Count</th></tr></thead><tbody>");
    for e in &stats.events {
        let _ = write!(
            out,
            r#"<tr><td><code>{}</code></td><td class="n">{}</td></tr>"#,
            escape(&e.name),
            e.count
        );
    }
    out.push_str("</tbody></table>");
    out
}

const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#222;margin:24px auto;max-width:1140px;padding:0 12px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}.meta{color:#555;margin:0 0 16px}\
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #dde1e6;border-radius:6px;padding:10px 14px;min-width:150px}\
.card b{display:block;font-size:22px}.grid{display:grid;grid-template-columns:3fr 2fr;gap:24px}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e3e6ea}\
th{font-weight:600;background:#f6f7f9}.n{text-align:right;font-variant-numeric:tabular-nums}\
.share{display:inline-block;width:80px;height:8px;background:#eef0f3;vertical-align:middle}.share span{display:block;height:8px;background:#3b6fd8}\
.swatch{display:inline-block;width:10px;height:10px;margin-right:6px}.empty{color:#777}form{margin:8px 0 16px}\
input,select,button{font:inherit;padding:2px 6px}svg{max-width:100%;height:auto}";

/// The whole page for `stats`.
pub(crate) fn render(stats: &Stats) -> String {
    let r = stats.recorder;
    let mut page = String::with_capacity(16 * 1024);
    let _ = write!(
        page,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Analytics · annex</title><style>{STYLE}</style></head><body>
<h1>Analytics</h1><p class="meta">From {from} to {to} (UTC), one bar per {bucket}.</p>
<form method="get"><label>From <input name="from" value="{from}" size="22"></label> <label>To <input name="to" value="{to}" size="22"></label> <label>Bucket <select name="bucket"><option value="hour"{hsel}>hour</option><option value="day"{dsel}>day</option></select></label> <button type="submit">Show</button></form>
<div class="cards"><div class="card">Page views<b>{total}</b></div><div class="card">Server errors<b>{errors}</b></div><div class="card">Waiting to be written<b>{buffered}</b></div><div class="card">Dropped (buffer full)<b>{dropped}</b></div></div>
<h2>Views over time</h2>{chart}
<div class="grid"><section><h2>Top paths</h2>{paths}</section><section><h2>Status mix</h2>{mix}<h2>Clients</h2>{agents}<h2>Custom events</h2>{events}</section></div>
</body></html>"#,
        from = escape(&stats.from),
        to = escape(&stats.to),
        bucket = stats.bucket.as_str(),
        hsel = if stats.bucket == Bucket::Hour { " selected" } else { "" },
        dsel = if stats.bucket == Bucket::Day { " selected" } else { "" },
        total = stats.total_views,
        errors = stats.status.server_error,
        buffered = r.buffered,
        dropped = r.dropped,
        chart = views_chart(stats),
        paths = top_paths(stats),
        mix = status_mix(stats),
        agents = agents(stats),
        events = events(stats),
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::RecorderFigures;
    use crate::stats::{AgentCount, BucketCount, EventCount, PathCount, StatusMix};

    fn stats() -> Stats {
        Stats {
            from: "2024-05-01T00:00:00Z".into(),
            to: "2024-05-01T03:00:00Z".into(),
            bucket: Bucket::Hour,
            total_views: 7,
            views: vec![
                BucketCount { start: "2024-05-01T00:00:00Z".into(), views: 5 },
                BucketCount { start: "2024-05-01T01:00:00Z".into(), views: 0 },
                BucketCount { start: "2024-05-01T02:00:00Z".into(), views: 2 },
            ],
            top_paths: vec![PathCount {
                route: "/ext/x/<script>alert(1)</script>".into(),
                views: 7,
                avg_ms: 1.5,
            }],
            status: StatusMix { ok: 6, redirect: 0, client_error: 1, server_error: 0 },
            agents: vec![AgentCount { agent: "firefox".into(), views: 7 }],
            events: vec![EventCount { name: "a&b".into(), count: 1 }],
            recorder: RecorderFigures::default(),
        }
    }

    #[test]
    fn user_controlled_text_is_escaped() {
        let page = render(&stats());
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("<code>a&amp;b</code>"));
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn the_chart_has_one_bar_per_bucket_axes_and_labels() {
        let page = render(&stats());
        assert_eq!(page.matches("<rect").count() - page.matches("fill=\"#eef0f3\"").count(), 3 + 2);
        assert!(page.contains("05-01 00:00") && page.contains("05-01 02:00"));
        assert!(page.contains("Page views</text>") && page.contains("Time (UTC, one bar per hour)"));
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(axis(0), (1, 1));
        assert_eq!(axis(7), (8, 2));
        assert_eq!(axis(23), (25, 5));
        assert_eq!(axis(980), (1000, 200));
    }
}
