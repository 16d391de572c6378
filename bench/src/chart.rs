//! Plain SVG line charts for scenario results: one panel per quantity
//! (latency, memory, throughput, ...), a shared time axis, and vertical
//! markers for events such as a snapshot's start and end. No dependencies:
//! the output is a string that any browser shows.

use std::fmt::Write;

/// One line on a panel.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// (seconds since start, value) in time order. A non-finite value
    /// leaves a gap: the line stops there and starts again after it.
    pub points: Vec<(f64, f64)>,
}

/// A panel: series that share a unit and a y axis.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub unit: String,
    pub series: Vec<Series>,
}

/// A vertical line across every panel at time `at` (seconds).
#[derive(Debug, Clone)]
pub struct Marker {
    pub at: f64,
    pub label: String,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub panels: Vec<Panel>,
    pub markers: Vec<Marker>,
}

const WIDTH: f64 = 900.0;
const PANEL_HEIGHT: f64 = 220.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const GAP: f64 = 50.0;
const COLORS: [&str; 12] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#e377c2",
    "#7f7f7f", "#bcbd22", "#393b79", "#ad494a",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" step (1, 2 or 5 times a power of ten) for about `ticks` ticks.
fn nice_step(range: f64, ticks: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / ticks;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let n = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * mag
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

impl Chart {
    /// The time range covered by every series and marker.
    fn time_range(&self) -> (f64, f64) {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for p in &self.panels {
            for s in &p.series {
                for &(t, _) in &s.points {
                    lo = lo.min(t);
                    hi = hi.max(t);
                }
            }
        }
        for m in &self.markers {
            lo = lo.min(m.at);
            hi = hi.max(m.at);
        }
        if !lo.is_finite() {
            return (0.0, 1.0);
        }
        if hi <= lo {
            hi = lo + 1.0;
        }
        (lo.min(0.0), hi)
    }

    pub fn to_svg(&self) -> String {
        let height = TOP + self.panels.len() as f64 * (PANEL_HEIGHT + GAP) + 20.0;
        let plot_w = WIDTH - LEFT - RIGHT;
        let (t0, t1) = self.time_range();
        let x = |t: f64| LEFT + (t - t0) / (t1 - t0) * plot_w;
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">"#
        );
        let _ = write!(
            out,
            r#"<rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}</text>"#,
            escape(&self.title)
        );
        for (i, panel) in self.panels.iter().enumerate() {
            let top = TOP + i as f64 * (PANEL_HEIGHT + GAP);
            let bottom = top + PANEL_HEIGHT;
            let vmax = panel
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .filter(|v| v.is_finite())
                .fold(0.0f64, f64::max);
            let step = nice_step(vmax.max(1e-9), 4.0);
            let ymax = (vmax / step).ceil().max(1.0) * step;
            let y = |v: f64| bottom - (v / ymax) * PANEL_HEIGHT;
            let _ = write!(
                out,
                r##"<text x="{LEFT}" y="{}" font-weight="bold">{} ({})</text><rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_HEIGHT}" fill="none" stroke="#999"/>"##,
                top - 6.0,
                escape(&panel.title),
                escape(&panel.unit)
            );
            let mut v = 0.0;
            while v <= ymax + step / 2.0 {
                let yy = y(v);
                let _ = write!(
                    out,
                    r##"<line x1="{LEFT}" x2="{}" y1="{yy}" y2="{yy}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
                    LEFT + plot_w,
                    LEFT - 4.0,
                    yy + 4.0,
                    fmt_num(v)
                );
                v += step;
            }
            let tstep = nice_step(t1 - t0, 8.0);
            let mut t = (t0 / tstep).ceil() * tstep;
            while t <= t1 {
                let _ = write!(
                    out,
                    r#"<text x="{}" y="{}" text-anchor="middle">{}s</text>"#,
                    x(t),
                    bottom + 14.0,
                    fmt_num(t)
                );
                t += tstep;
            }
            for m in &self.markers {
                let _ = write!(
                    out,
                    r##"<line x1="{0}" x2="{0}" y1="{top}" y2="{bottom}" stroke="#555" stroke-dasharray="4,3"/><text x="{1}" y="{2}" font-size="10">{3}</text>"##,
                    x(m.at),
                    x(m.at) + 3.0,
                    top + 12.0,
                    escape(&m.label)
                );
            }
            for (j, s) in panel.series.iter().enumerate() {
                let color = COLORS[j % COLORS.len()];
                let mut d = String::new();
                let mut pen_down = false;
                for &(t, v) in &s.points {
                    if !v.is_finite() {
                        pen_down = false;
                        continue;
                    }
                    let cmd = if pen_down { " L" } else { " M" };
                    let _ = write!(d, "{cmd}{:.1},{:.1}", x(t), y(v.min(ymax)));
                    pen_down = true;
                }
                let d = d.trim_start();
                let _ = write!(
                    out,
                    r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="1.5"/><rect x="{}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
                    LEFT + plot_w + 10.0,
                    top + 10.0 + j as f64 * 16.0,
                    LEFT + plot_w + 24.0,
                    top + 19.0 + j as f64 * 16.0,
                    escape(&s.name)
                );
            }
        }
        out.push_str("</svg>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(100.0, 4.0), 50.0);
        assert_eq!(nice_step(0.9, 4.0), 0.5);
        assert_eq!(nice_step(0.0, 4.0), 1.0);
    }

    #[test]
    fn renders_panels_series_and_markers() {
        let chart = Chart {
            title: "snapshot <under> load".into(),
            panels: vec![
                Panel {
                    title: "probe p99".into(),
                    unit: "ms".into(),
                    series: vec![
                        Series {
                            name: "ours".into(),
                            points: vec![(0.0, 1.0), (1.0, 2.0), (2.0, f64::NAN), (3.0, 1.5)],
                        },
                        Series {
                            name: "redis".into(),
                            points: vec![(0.0, 3.0), (3.0, 7.0)],
                        },
                    ],
                },
                Panel {
                    title: "RSS".into(),
                    unit: "MiB".into(),
                    series: vec![],
                },
            ],
            markers: vec![Marker {
                at: 1.5,
                label: "BGSAVE".into(),
            }],
        };
        let svg = chart.to_svg();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("snapshot &lt;under&gt; load"));
        assert_eq!(svg.matches("<path ").count(), 2);
        // The marker is drawn on both panels.
        assert_eq!(svg.matches("BGSAVE").count(), 2);
        // A NaN point is a gap: never written, and the line restarts after it.
        assert!(!svg.contains("NaN"));
        assert!(svg.contains(r#"<path d="M"#));
        assert_eq!(svg.matches(" M").count(), 1, "{svg}");
    }
}
