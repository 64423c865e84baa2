//! Draws one screen of `sluice top` from [`Stats`].
//!
//! Receives the latest stats and the scrape status; emits a ratatui frame:
//! a header line, then tables for inputs, stages, outputs and drops, then a
//! status line. Rates are per second over the last interval; totals are
//! exact counter values (so they can be compared with `/metrics`). Must not
//! do I/O: the run loop scrapes, this only paints.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Row, Table};

use super::rates::Stats;

/// What the run loop knows besides the numbers.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub url: String,
    pub every_secs: f64,
    /// Seconds since the last good scrape, if any.
    pub last_ok_age: Option<f64>,
    /// The last scrape's error, if it failed.
    pub error: Option<String>,
    /// Lines of the last scrape that did not parse.
    pub bad_lines: usize,
}

/// A rate or count with an SI suffix: `950`, `12.35k`, `1.20M`.
pub fn si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.2}k", v / 1e3)
    } else if a == a.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn opt_si(v: Option<f64>) -> String {
    v.map_or_else(|| "…".into(), si)
}

/// A byte rate or size in binary units: `512B`, `1.5KiB`, `45.2MiB`.
pub fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0}{}", UNITS[u])
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// A latency in seconds: `35µs`, `1.25ms`, `2.50s`; `-` when unknown.
pub fn secs(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s < 1e-3 => format!("{:.0}µs", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.2}ms", s * 1e3),
        Some(s) => format!("{s:.2}s"),
    }
}

/// An uptime: `42s`, `5m03s`, `2h05m`, `3d04h`.
pub fn duration(s: f64) -> String {
    let s = s as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

fn table<'a>(
    title: &'a str,
    head: &'a [&'a str],
    rows: Vec<Row<'a>>,
    widths: &'a [u16],
) -> Table<'a> {
    let header = Row::new(head.iter().map(|h| Cell::from(*h)))
        .style(Style::default().add_modifier(Modifier::BOLD));
    Table::new(rows, widths.iter().map(|w| Constraint::Length(*w)))
        .header(header)
        .block(Block::default().borders(Borders::ALL).title(title))
}

/// Paints the whole screen.
pub fn draw(f: &mut Frame<'_>, stats: Option<&Stats>, status: &Status) {
    let empty = Stats::default();
    let st = stats.unwrap_or(&empty);
    let drops: Vec<_> = st.drops.iter().filter(|d| d.total > 0.0).collect();
    let box_h = |n: usize| (n.max(1) + 3) as u16;
    let [head, ins, stg, outs, drp, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(box_h(st.inputs.len())),
        Constraint::Length(box_h(st.stages.len())),
        Constraint::Length(box_h(st.outputs.len())),
        Constraint::Length(box_h(drops.len())),
        Constraint::Length(1),
    ])
    .areas(f.area());

    f.render_widget(header_line(st, status), head);

    let rows = st
        .inputs
        .iter()
        .map(|i| {
            Row::new(vec![
                i.name.clone(),
                opt_si(i.records_rate),
                i.bytes_rate.map_or_else(|| "…".into(), bytes),
                format!("{:.0}", i.records_total),
                format!("{:.0}", i.connections),
                opt_si(i.parse_errors_rate),
            ])
        })
        .collect();
    f.render_widget(
        table(
            "Inputs (per second over the last interval)",
            &[
                "input",
                "records/s",
                "bytes/s",
                "records",
                "conns",
                "parse errs/s",
            ],
            rows,
            &[16, 11, 11, 14, 7, 12],
        ),
        ins,
    );

    let rows = st
        .stages
        .iter()
        .map(|s| {
            Row::new(vec![
                s.name.clone(),
                opt_si(s.records_rate),
                format!("{:.0}", s.records_total),
                secs(s.p50),
                secs(s.p99),
            ])
        })
        .collect();
    f.render_widget(
        table(
            "Stages (latency: receipt to leaving the stage)",
            &["stage", "records/s", "records", "p50", "p99"],
            rows,
            &[16, 11, 14, 10, 10],
        ),
        stg,
    );

    let rows = st
        .outputs
        .iter()
        .map(|o| {
            // Sinks without a connection (file, stdout) report 1.
            let state = match o.connected {
                Some(c) if c >= 1.0 => "up",
                Some(_) => "down",
                None => "-",
            };
            Row::new(vec![
                o.name.clone(),
                opt_si(o.sent_rate),
                o.bytes_rate.map_or_else(|| "…".into(), bytes),
                format!("{:.0}", o.sent_total),
                format!("{:.0}/{:.0}", o.queue_batches, o.queue_records),
                secs(o.p50),
                secs(o.p99),
                opt_si(o.failed_rate),
                state.into(),
            ])
        })
        .collect();
    f.render_widget(
        table(
            "Outputs (latency: receipt to written)",
            &[
                "output",
                "sent/s",
                "bytes/s",
                "sent",
                "queue b/r",
                "p50",
                "p99",
                "failed/s",
                "peer",
            ],
            rows,
            &[16, 11, 11, 14, 12, 10, 10, 9, 5],
        ),
        outs,
    );

    let rows = if drops.is_empty() {
        vec![Row::new(vec!["none".to_string()])]
    } else {
        drops
            .iter()
            .map(|d| {
                Row::new(vec![
                    d.place.clone(),
                    d.reason.clone(),
                    opt_si(d.rate),
                    format!("{:.0}", d.total),
                ])
            })
            .collect()
    };
    f.render_widget(
        table(
            "Drops by reason (since start)",
            &["where", "reason", "/s", "total"],
            rows,
            &[24, 16, 11, 14],
        ),
        drp,
    );

    f.render_widget(status_line(status), foot);
}

fn header_line<'a>(st: &Stats, status: &'a Status) -> Line<'a> {
    let mut parts = vec![
        Span::styled("sluice top ", Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(status.url.as_str()),
    ];
    let mut push = |s: String| parts.push(Span::raw(format!("  {s}")));
    if let Some(u) = st.uptime {
        push(format!("up {}", duration(u)));
    }
    if let Some(r) = st.rss_bytes {
        push(format!("rss {}", bytes(r)));
    }
    push(match st.identity_entries {
        Some(n) => format!("identity {n:.0} entries"),
        None => "identity off".into(),
    });
    if let Some(n) = st.reloads {
        push(format!(
            "reloads {n:.0} ({:.0} refused)",
            st.reload_failures.unwrap_or(0.0)
        ));
    }
    Line::from(parts)
}

fn status_line(status: &Status) -> Line<'_> {
    let mut parts = Vec::new();
    if let Some(e) = &status.error {
        parts.push(Span::styled(
            format!("scrape failed: {e}"),
            Style::default().fg(Color::Red),
        ));
    } else if let Some(age) = status.last_ok_age {
        parts.push(Span::raw(format!(
            "scraped {age:.1}s ago, every {}s",
            status.every_secs
        )));
    } else {
        parts.push(Span::raw("waiting for the first scrape"));
    }
    if status.bad_lines > 0 {
        parts.push(Span::styled(
            format!("  ({} unreadable lines)", status.bad_lines),
            Style::default().fg(Color::Yellow),
        ));
    }
    parts.push(Span::styled(
        "   q quits",
        Style::default().add_modifier(Modifier::BOLD),
    ));
    Line::from(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::prom::Scrape;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn screen(stats: Option<&Stats>, status: &Status) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(130, 40)).unwrap();
        t.draw(|f| draw(f, stats, status)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect()
    }

    fn row<'a>(lines: &'a [String], first: &str) -> Vec<&'a str> {
        lines
            .iter()
            .map(|l| {
                l.trim_matches(|c| c == '│' || c == ' ')
                    .split_whitespace()
                    .collect::<Vec<_>>()
            })
            .find(|w| w.first() == Some(&first))
            .unwrap_or_else(|| panic!("no row {first} in\n{}", lines.join("\n")))
    }

    #[test]
    fn si_suffixes_keep_three_significant_digits() {
        assert_eq!(si(0.0), "0");
        assert_eq!(si(950.0), "950");
        assert_eq!(si(2.5), "2.5");
        assert_eq!(si(12_345.0), "12.35k");
        assert_eq!(si(1_200_000.0), "1.20M");
        assert_eq!(secs(Some(0.000_035)), "35µs");
        assert_eq!(secs(Some(0.001_25)), "1.25ms");
        assert_eq!(secs(None), "-");
        assert_eq!(bytes(1536.0), "1.5KiB");
        assert_eq!(duration(3725.0), "1h02m");
    }

    #[test]
    fn a_screen_shows_each_input_stage_output_and_nonzero_drop_reason() {
        let a = Scrape::parse(
            "sluice_input_records_total{input=\"tcp\"} 1000\n\
             sluice_input_dropped_total{input=\"tcp\",reason=\"queue_full\"} 0\n\
             sluice_stage_records_total{stage=\"parse\"} 1000\n\
             sluice_output_sent_total{output=\"file\"} 900\n\
             sluice_output_dropped_total{output=\"file\",reason=\"disk_full\"} 1\n\
             sluice_uptime_seconds 10\n",
        );
        let b = Scrape::parse(
            "sluice_input_records_total{input=\"tcp\"} 3000\n\
             sluice_input_dropped_total{input=\"tcp\",reason=\"queue_full\"} 0\n\
             sluice_stage_records_total{stage=\"parse\"} 3000\n\
             sluice_output_sent_total{output=\"file\"} 2900\n\
             sluice_output_queue_batches{output=\"file\"} 2\n\
             sluice_output_queue_records{output=\"file\"} 100\n\
             sluice_output_dropped_total{output=\"file\",reason=\"disk_full\"} 5\n\
             sluice_identity_entries 17\n\
             sluice_uptime_seconds 11\n",
        );
        let st = Stats::compute(Some(&a), &b, 1.0);
        let status = Status {
            url: "http://127.0.0.1:9598/metrics".into(),
            every_secs: 1.0,
            last_ok_age: Some(0.2),
            ..Default::default()
        };
        let lines = screen(Some(&st), &status);
        assert!(lines[0].contains("identity 17 entries"), "{}", lines[0]);
        assert_eq!(row(&lines, "tcp")[1], "2.00k");
        assert_eq!(row(&lines, "tcp")[3], "3000");
        assert_eq!(row(&lines, "parse")[1], "2.00k");
        assert_eq!(row(&lines, "file")[1], "2.00k");
        assert_eq!(row(&lines, "file")[4], "2/100");
        // Only the reason that ever dropped anything is listed.
        let d = lines.iter().find(|l| l.contains("disk_full")).unwrap();
        let d: Vec<_> = d
            .trim_matches(|c| c == '│' || c == ' ')
            .split_whitespace()
            .collect();
        assert_eq!(d, ["output", "\"file\"", "disk_full", "4", "5"]);
        assert!(!lines.iter().any(|l| l.contains("queue_full")));
        assert!(lines.iter().any(|l| l.contains("q quits")));
    }

    #[test]
    fn a_failed_scrape_is_shown_in_the_status_line() {
        let status = Status {
            error: Some("connection refused".into()),
            ..Default::default()
        };
        let lines = screen(None, &status);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("scrape failed: connection refused"))
        );
    }
}
