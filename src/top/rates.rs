//! Rates and latency quantiles from two successive scrapes.
//!
//! Receives the previous and the current [`Scrape`]; emits [`Stats`], the
//! numbers `sluice top` shows. Counters become per-second rates
//! `(now - before) / dt`, where `dt` is the difference of
//! `sluice_uptime_seconds` between the scrapes (sluice's own clock, so the
//! time the HTTP round trip took does not skew the rate), falling back to
//! the client's clock. A counter that went down (sluice restarted) counts
//! from zero, as Prometheus' `rate()` does. Latency quantiles come from the
//! histogram bucket deltas between the two scrapes, so they describe the
//! last interval, not the whole uptime.

use super::prom::Scrape;

/// What one screen of `sluice top` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Seconds between the two scrapes (0 on the first).
    pub interval: f64,
    pub uptime: Option<f64>,
    pub rss_bytes: Option<f64>,
    pub identity_entries: Option<f64>,
    pub reloads: Option<f64>,
    pub reload_failures: Option<f64>,
    pub inputs: Vec<InputRow>,
    pub stages: Vec<StageRow>,
    pub outputs: Vec<OutputRow>,
    pub drops: Vec<DropRow>,
}

/// Rates are `None` on the first scrape (nothing to compare with).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputRow {
    pub name: String,
    pub records_rate: Option<f64>,
    pub bytes_rate: Option<f64>,
    pub records_total: f64,
    pub connections: f64,
    /// Records kept despite a parse problem, per second (all reasons).
    pub parse_errors_rate: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageRow {
    pub name: String,
    pub records_rate: Option<f64>,
    pub records_total: f64,
    /// Seconds, over the last interval; `None` when nothing was recorded.
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputRow {
    pub name: String,
    pub sent_rate: Option<f64>,
    pub bytes_rate: Option<f64>,
    pub sent_total: f64,
    pub queue_batches: f64,
    pub queue_records: f64,
    pub connected: Option<f64>,
    pub failed_rate: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

/// One reason records were lost, at an input or an output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DropRow {
    /// `input "udp"` or `output "file"`.
    pub place: String,
    pub reason: String,
    pub rate: Option<f64>,
    pub total: f64,
}

/// `(now - before) / dt`, counting from zero after a counter reset.
pub fn rate(before: Option<f64>, now: Option<f64>, dt: f64) -> Option<f64> {
    let now = now?;
    let before = before?;
    if dt <= 0.0 {
        return None;
    }
    let delta = if now >= before { now - before } else { now };
    Some(delta / dt)
}

/// The `q` quantile of a cumulative histogram given as `(le, count)`
/// pairs sorted by `le` (the last one `+Inf`), interpolated linearly within
/// the bucket it falls in, as PromQL's `histogram_quantile` does. A rank
/// in the `+Inf` bucket reports the highest finite bound.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 || buckets.len() < 2 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, cum) in buckets {
        if cum >= rank && cum > below {
            if le.is_infinite() {
                return Some(lower);
            }
            return Some(lower + (le - lower) * (rank - below) / (cum - below));
        }
        lower = le;
        below = cum;
    }
    Some(lower)
}

/// The bucket deltas of histogram `name` (series with `labels`) between
/// two scrapes, sorted by bound. Without a previous scrape the cumulative
/// buckets are used as they are.
fn bucket_deltas(
    before: Option<&Scrape>,
    now: &Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Vec<(f64, f64)> {
    let bucket = format!("{name}_bucket");
    let mut out: Vec<(f64, f64)> = now
        .series(&bucket)
        .filter(|s| s.has(labels))
        .filter_map(|s| {
            let le_text = s.label("le")?;
            let le: f64 = match le_text {
                "+Inf" => f64::INFINITY,
                t => t.parse().ok()?,
            };
            let mut want: Vec<(&str, &str)> = labels.to_vec();
            want.push(("le", le_text));
            let prev = before.and_then(|b| b.get(&bucket, &want)).unwrap_or(0.0);
            let delta = if s.value >= prev {
                s.value - prev
            } else {
                s.value
            };
            Some((le, delta))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

fn latency(
    before: Option<&Scrape>,
    now: &Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> (Option<f64>, Option<f64>) {
    let b = bucket_deltas(before, now, name, labels);
    (quantile(0.5, &b), quantile(0.99, &b))
}

impl Stats {
    /// The view of `now`, with rates against `before` over `client_dt`
    /// seconds (used when the scrapes carry no uptime).
    pub fn compute(before: Option<&Scrape>, now: &Scrape, client_dt: f64) -> Stats {
        let uptime = now.get("sluice_uptime_seconds", &[]);
        let dt = match (
            before.and_then(|b| b.get("sluice_uptime_seconds", &[])),
            uptime,
        ) {
            (Some(a), Some(b)) if b > a => b - a,
            _ if before.is_some() => client_dt,
            _ => 0.0,
        };
        let r = |name: &str, labels: &[(&str, &str)]| {
            rate(
                before.and_then(|b| b.sum(name, labels)),
                now.sum(name, labels),
                dt,
            )
        };
        let v = |name: &str, labels: &[(&str, &str)]| now.sum(name, labels).unwrap_or(0.0);

        let mut drops = Vec::new();
        let inputs = now
            .label_values("sluice_input_records_total", "input")
            .into_iter()
            .map(|name| {
                let l = [("input", name.as_str())];
                for reason in now.label_values("sluice_input_dropped_total", "reason") {
                    let lr = [("input", name.as_str()), ("reason", reason.as_str())];
                    if now.get("sluice_input_dropped_total", &lr).is_some() {
                        drops.push(DropRow {
                            place: format!("input \"{name}\""),
                            rate: r("sluice_input_dropped_total", &lr),
                            total: v("sluice_input_dropped_total", &lr),
                            reason,
                        });
                    }
                }
                InputRow {
                    records_rate: r("sluice_input_records_total", &l),
                    bytes_rate: r("sluice_input_bytes_total", &l),
                    records_total: v("sluice_input_records_total", &l),
                    connections: v("sluice_input_connections", &l),
                    parse_errors_rate: r("sluice_input_parse_errors_total", &l),
                    name,
                }
            })
            .collect();
        let stages = now
            .label_values("sluice_stage_records_total", "stage")
            .into_iter()
            .map(|name| {
                let l = [("stage", name.as_str())];
                let (p50, p99) = latency(before, now, "sluice_stage_latency_seconds", &l);
                StageRow {
                    records_rate: r("sluice_stage_records_total", &l),
                    records_total: v("sluice_stage_records_total", &l),
                    p50,
                    p99,
                    name,
                }
            })
            .collect();
        let outputs = now
            .label_values("sluice_output_sent_total", "output")
            .into_iter()
            .map(|name| {
                let l = [("output", name.as_str())];
                for reason in now.label_values("sluice_output_dropped_total", "reason") {
                    let lr = [("output", name.as_str()), ("reason", reason.as_str())];
                    if now.get("sluice_output_dropped_total", &lr).is_some() {
                        drops.push(DropRow {
                            place: format!("output \"{name}\""),
                            rate: r("sluice_output_dropped_total", &lr),
                            total: v("sluice_output_dropped_total", &lr),
                            reason,
                        });
                    }
                }
                let (p50, p99) = latency(before, now, "sluice_end_to_end_latency_seconds", &l);
                OutputRow {
                    sent_rate: r("sluice_output_sent_total", &l),
                    bytes_rate: r("sluice_output_bytes_total", &l),
                    sent_total: v("sluice_output_sent_total", &l),
                    queue_batches: v("sluice_output_queue_batches", &l),
                    queue_records: v("sluice_output_queue_records", &l),
                    connected: now.get("sluice_output_connected", &l),
                    failed_rate: r("sluice_output_failed_total", &l),
                    p50,
                    p99,
                    name,
                }
            })
            .collect();
        Stats {
            interval: dt,
            uptime,
            rss_bytes: now.get("sluice_resident_memory_bytes", &[]),
            identity_entries: now.get("sluice_identity_entries", &[]),
            reloads: now.get("sluice_config_reloads_total", &[]),
            reload_failures: now.get("sluice_config_reload_failures_total", &[]),
            inputs,
            stages,
            outputs,
            drops,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(uptime: f64, tcp: f64, dropped: f64, parse_buckets: [f64; 4]) -> Scrape {
        let [a, b, c, inf] = parse_buckets;
        Scrape::parse(&format!(
            "sluice_input_records_total{{input=\"tcp\"}} {tcp}\n\
             sluice_input_bytes_total{{input=\"tcp\"}} {}\n\
             sluice_input_dropped_total{{input=\"tcp\",reason=\"queue_full\"}} {dropped}\n\
             sluice_stage_records_total{{stage=\"parse\"}} {tcp}\n\
             sluice_stage_latency_seconds_bucket{{stage=\"parse\",le=\"0.001\"}} {a}\n\
             sluice_stage_latency_seconds_bucket{{stage=\"parse\",le=\"0.002\"}} {b}\n\
             sluice_stage_latency_seconds_bucket{{stage=\"parse\",le=\"0.005\"}} {c}\n\
             sluice_stage_latency_seconds_bucket{{stage=\"parse\",le=\"+Inf\"}} {inf}\n\
             sluice_output_sent_total{{output=\"file\"}} {tcp}\n\
             sluice_output_queue_records{{output=\"file\"}} 7\n\
             sluice_output_dropped_total{{output=\"file\",reason=\"queue_full\"}} 0\n\
             sluice_identity_entries 3\n\
             sluice_uptime_seconds {uptime}\n",
            tcp * 100.0
        ))
    }

    #[test]
    fn rates_divide_counter_deltas_by_the_uptime_difference() {
        let a = scrape(10.0, 1000.0, 0.0, [0.0; 4]);
        let b = scrape(12.0, 5000.0, 10.0, [0.0; 4]);
        // The client clock (3 s) is ignored: sluice's uptime says 2 s.
        let s = Stats::compute(Some(&a), &b, 3.0);
        assert_eq!(s.interval, 2.0);
        assert_eq!(s.inputs[0].records_rate, Some(2000.0));
        assert_eq!(s.inputs[0].bytes_rate, Some(200_000.0));
        assert_eq!(s.inputs[0].records_total, 5000.0);
        assert_eq!(s.stages[0].records_rate, Some(2000.0));
        assert_eq!(s.outputs[0].sent_rate, Some(2000.0));
        assert_eq!(s.outputs[0].queue_records, 7.0);
        assert_eq!(s.identity_entries, Some(3.0));
    }

    #[test]
    fn the_first_scrape_has_totals_but_no_rates() {
        let s = Stats::compute(None, &scrape(10.0, 1000.0, 0.0, [0.0; 4]), 0.0);
        assert_eq!(s.inputs[0].records_rate, None);
        assert_eq!(s.inputs[0].records_total, 1000.0);
        assert_eq!(s.interval, 0.0);
    }

    #[test]
    fn without_uptime_the_client_clock_is_the_interval() {
        let a = Scrape::parse("sluice_input_records_total{input=\"u\"} 10\n");
        let b = Scrape::parse("sluice_input_records_total{input=\"u\"} 40\n");
        let s = Stats::compute(Some(&a), &b, 1.5);
        assert_eq!(s.inputs[0].records_rate, Some(20.0));
    }

    #[test]
    fn a_counter_that_went_down_counts_from_zero_like_prometheus() {
        assert_eq!(rate(Some(1000.0), Some(300.0), 1.0), Some(300.0));
        assert_eq!(rate(None, Some(300.0), 1.0), None);
        assert_eq!(rate(Some(1.0), Some(3.0), 0.0), None);
    }

    #[test]
    fn drops_are_listed_per_place_and_reason_with_rates() {
        let a = scrape(10.0, 1000.0, 5.0, [0.0; 4]);
        let b = scrape(11.0, 2000.0, 25.0, [0.0; 4]);
        let s = Stats::compute(Some(&a), &b, 1.0);
        assert_eq!(s.drops.len(), 2);
        assert_eq!(s.drops[0].place, "input \"tcp\"");
        assert_eq!(s.drops[0].reason, "queue_full");
        assert_eq!(s.drops[0].rate, Some(20.0));
        assert_eq!(s.drops[0].total, 25.0);
        assert_eq!(s.drops[1].place, "output \"file\"");
        assert_eq!(s.drops[1].rate, Some(0.0));
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_like_histogram_quantile() {
        // 100 samples: 50 ≤ 1 ms, 40 in (1, 2] ms, 10 in (2, 5] ms.
        let b = [
            (0.001, 50.0),
            (0.002, 90.0),
            (0.005, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(quantile(0.5, &b), Some(0.001));
        // Rank 99 is the 9th of 10 in (2, 5] ms: 2 + 3 * 9/10 = 4.7 ms.
        let p99 = quantile(0.99, &b).unwrap();
        assert!((p99 - 0.0047).abs() < 1e-12, "{p99}");
        // Rank 25 in the first bucket interpolates from zero.
        assert!((quantile(0.25, &b).unwrap() - 0.0005).abs() < 1e-12);
    }

    #[test]
    fn a_quantile_in_the_inf_bucket_reports_the_highest_finite_bound() {
        let b = [(0.001, 1.0), (0.005, 2.0), (f64::INFINITY, 10.0)];
        assert_eq!(quantile(0.99, &b), Some(0.005));
    }

    #[test]
    fn an_empty_histogram_has_no_quantiles() {
        assert_eq!(quantile(0.5, &[(0.001, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(quantile(0.5, &[]), None);
    }

    #[test]
    fn latency_describes_the_last_interval_not_the_whole_uptime() {
        // Before: 1000 fast samples (≤ 1 ms). In the interval: 10 slow
        // ones in (2, 5] ms. Cumulative p50 would be ≤ 1 ms; the interval's
        // is in the slow bucket.
        let a = scrape(10.0, 0.0, 0.0, [1000.0, 1000.0, 1000.0, 1000.0]);
        let b = scrape(11.0, 0.0, 0.0, [1000.0, 1000.0, 1010.0, 1010.0]);
        let s = Stats::compute(Some(&a), &b, 1.0);
        let p50 = s.stages[0].p50.unwrap();
        assert!((p50 - 0.0035).abs() < 1e-12, "{p50}");
        // No new samples: no latency to show.
        let s = Stats::compute(Some(&b), &b, 1.0);
        assert_eq!(s.stages[0].p50, None);
    }
}
