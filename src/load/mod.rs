//! Load testing: `sluice load` sends stamped, realistic syslog traffic;
//! `sluice sink` receives what a pipeline forwards and reports throughput,
//! loss, duplicates and end-to-end latency.
//!
//! The two are separate commands so they can run as separate processes
//! (or on separate machines, with synchronised clocks for latency): a
//! sender run stamps every message with its run id, stream, sequence and
//! send time ([`stamp`]); the sink needs nothing but the stamps. The sender
//! pre-renders its messages ([`ring`]) and only patches stamps while it
//! sends, so it is not what limits a test; the sink frames with sluice's
//! own framer and finds each stamp from the end of the frame.

pub mod report;
pub mod ring;
pub mod send;
pub mod sink;
pub mod stamp;
pub mod tally;
pub mod traffic;

use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;

use crate::config::HumanDuration;
use report::{Progress, SendReport, SinkReport};
use ring::{Framing, Ring, RingSpec};
use send::{Conn, Plan, StreamStats};
use traffic::Mix;

/// `sluice load`: send realistic, stamped syslog traffic.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Send over TCP to this `host:port`.
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<String>,
    /// Send over UDP to this `host:port`.
    #[arg(long, value_name = "ADDR")]
    pub udp: Option<String>,
    /// Connections (TCP) and sockets (UDP) per protocol; each is one
    /// stream with its own thread.
    #[arg(short = 'c', long, default_value_t = 1)]
    pub connections: u32,
    /// TCP framing: lf or octet (counting).
    #[arg(long, value_enum, default_value_t = Framing::Lf)]
    pub framing: Framing,
    /// End each UDP datagram with a LF (some relays need it to frame).
    #[arg(long)]
    pub udp_lf: bool,
    /// Total messages per second over all streams; 0 sends flat out.
    #[arg(short, long, default_value = "0", value_parser = parse_count)]
    pub rate: u64,
    /// Total messages to send (e.g. 1M), the streams' fins included.
    #[arg(short = 'n', long, value_parser = parse_count)]
    pub count: Option<u64>,
    /// How long to send (e.g. 10s). Default 10s when --count is not given.
    #[arg(short, long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Kinds of message and their weights: windows, windows-lower,
    /// windows-camel, flowmon, sshd, cef, perf (RFC 5424 + 280-byte
    /// Windows JSON, the perf/ workload).
    #[arg(short, long, default_value = traffic::DEFAULT_MIX)]
    pub mix: Mix,
    /// Distinct messages pre-rendered per stream.
    #[arg(long, default_value_t = 4096)]
    pub variants: usize,
    /// Seed for the message variety (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `sluice sink`: receive what a pipeline forwards and measure it.
#[derive(Args, Debug, Clone)]
pub struct SinkArgs {
    /// Listen on TCP at this address (port 0 picks one; the address is
    /// logged as `sink listening on tcp ADDR`).
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<SocketAddr>,
    /// Listen on UDP at this address.
    #[arg(long, value_name = "ADDR")]
    pub udp: Option<SocketAddr>,
    /// Stop after this many records.
    #[arg(short = 'n', long, value_parser = parse_count)]
    pub count: Option<u64>,
    /// Stop after this long.
    #[arg(short, long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop when nothing arrived for this long after the first record
    /// ("0s" never).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub idle: Duration,
    /// Keep running after every sender run seen is complete (by default
    /// the sink stops once all fins arrived and nothing is missing).
    #[arg(long)]
    pub keep_running: bool,
    /// Longest frame read whole.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_frame: usize,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `10s`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    HumanDuration::parse(s)
        .map(|d| d.0)
        .ok_or_else(|| format!("`{s}` is not a duration (e.g. 500ms, 10s, 2m)"))
}

/// `1000`, `100k`, `1M`, `2G`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        Some('g' | 'G') => (&t[..t.len() - 1], 1_000_000_000),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("`{s}` is not a count (e.g. 5000, 100k, 1M)"))
}

/// A flag set by SIGINT/SIGTERM.
fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            log::warn!("cannot catch signal {sig}: {e}");
        }
    }
    stop
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))
}

/// One stream, ready to send.
struct Stream {
    ring: Ring,
    conn: Conn,
    plan: Plan,
    stats: Arc<StreamStats>,
}

/// Runs `sluice load`.
pub fn load_main(a: LoadArgs) -> ExitCode {
    match load(a) {
        Ok(code) => code,
        Err(e) => {
            log::error!("load: {e}");
            ExitCode::from(2)
        }
    }
}

fn load(a: LoadArgs) -> Result<ExitCode, String> {
    if a.tcp.is_none() && a.udp.is_none() {
        return Err("give --tcp ADDR and/or --udp ADDR".into());
    }
    if a.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    let per = a.connections;
    let tcp_n = if a.tcp.is_some() { per } else { 0 };
    let udp_n = if a.udp.is_some() { per } else { 0 };
    let streams = tcp_n + udp_n;
    if streams > stamp::MAX_STREAMS {
        return Err(format!("at most {} streams", stamp::MAX_STREAMS));
    }
    if a.count.is_some_and(|c| c < streams as u64) {
        return Err(format!(
            "--count must be at least the number of streams ({streams}): each ends with a fin"
        ));
    }
    let duration = match (a.count, a.duration) {
        (None, None) => Some(Duration::from_secs(10)),
        (_, d) => d,
    };
    let run = fastrand::u32(..);
    let seed = a.seed.unwrap_or_else(|| fastrand::u64(..));
    let stop = stop_flag();

    let mut list = Vec::new();
    for k in 0..streams {
        let udp = k >= tcp_n;
        let framing = if udp {
            if a.udp_lf { Framing::Lf } else { Framing::None }
        } else {
            a.framing
        };
        let ring = Ring::build(&RingSpec {
            mix: &a.mix,
            variants: a.variants,
            framing,
            seed,
            run,
            stream: k,
            streams,
        });
        let conn = if udp {
            let target = resolve(a.udp.as_deref().unwrap_or_default())?;
            let bind: SocketAddr = if target.is_ipv4() {
                "0.0.0.0:0".parse().expect("static address")
            } else {
                "[::]:0".parse().expect("static address")
            };
            let s = UdpSocket::bind(bind).map_err(|e| format!("udp bind: {e}"))?;
            s.connect(target)
                .map_err(|e| format!("udp {target}: {e}"))?;
            let _ = socket2::SockRef::from(&s).set_send_buffer_size(4 * 1024 * 1024);
            Conn::Udp(s)
        } else {
            let target = resolve(a.tcp.as_deref().unwrap_or_default())?;
            let s = TcpStream::connect(target).map_err(|e| format!("tcp {target}: {e}"))?;
            let _ = s.set_nodelay(true);
            Conn::Tcp(s)
        };
        let share =
            |total: u64| total / streams as u64 + u64::from((k as u64) < total % streams as u64);
        list.push(Stream {
            ring,
            conn,
            plan: Plan {
                count: a.count.map(share),
                deadline: None,
                rate: (a.rate > 0).then(|| a.rate as f64 / streams as f64),
            },
            stats: Arc::new(StreamStats::default()),
        });
    }
    let mean = list.iter().map(|s| s.ring.mean_size()).sum::<usize>() / list.len();
    log::info!(
        "load: run {run:08x}: {streams} stream(s) ({tcp_n} TCP, {udp_n} UDP), mix {}, mean {mean} B/message",
        a.mix
    );
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    let stats: Vec<Arc<StreamStats>> = list.iter().map(|s| s.stats.clone()).collect();
    let mut handles = Vec::new();
    for (k, mut s) in list.into_iter().enumerate() {
        s.plan.deadline = deadline;
        let stop = stop.clone();
        let h = std::thread::Builder::new()
            .name(format!("load-{k}"))
            .spawn(move || send::run(&mut s.ring, &mut s.conn, s.plan, &s.stats, &stop))
            .map_err(|e| format!("cannot start a sender thread: {e}"))?;
        handles.push(h);
    }
    let mut progress = Progress::new("load", "sent");
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if !a.quiet {
            let sent: u64 = stats.iter().map(|s| s.sent.load(Ordering::Relaxed)).sum();
            progress.tick(sent, "");
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut errors = Vec::new();
    for (k, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => errors.push(format!("stream {k}: {e}")),
            Err(_) => errors.push(format!("stream {k}: sender thread panicked")),
        }
    }
    let sum = |f: fn(&StreamStats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
    let sent = sum(|s| s.sent.load(Ordering::Relaxed));
    let bytes = sum(|s| s.bytes.load(Ordering::Relaxed));
    let report = SendReport {
        run: format!("{run:08x}"),
        streams,
        tcp_streams: tcp_n,
        udp_streams: udp_n,
        mix: a.mix.to_string(),
        framing: format!("{:?}", a.framing).to_lowercase(),
        rate: a.rate as f64,
        sent,
        bytes,
        seconds,
        records_per_sec: sent as f64 / seconds.max(1e-9),
        mb_per_sec: bytes as f64 / 1e6 / seconds.max(1e-9),
        mean_bytes: bytes / sent.max(1),
        retries: sum(|s| s.retries.load(Ordering::Relaxed)),
        errors,
    };
    print_report(a.json, &report, || report.table());
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_report<T: serde::Serialize>(json: bool, r: &T, table: impl FnOnce() -> String) {
    if json {
        match serde_json::to_string_pretty(r) {
            Ok(s) => println!("{s}"),
            Err(e) => log::error!("report: {e}"),
        }
    } else {
        print!("{}", table());
    }
}

/// Runs `sluice sink`.
pub fn sink_main(a: SinkArgs) -> ExitCode {
    if a.tcp.is_none() && a.udp.is_none() {
        log::error!("sink: give --tcp ADDR and/or --udp ADDR to listen on");
        return ExitCode::from(2);
    }
    let stop = stop_flag();
    let sink = match sink::Sink::start(a.tcp, a.udp, a.max_frame) {
        Ok(s) => s,
        Err(e) => {
            log::error!("sink: cannot listen: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(t) = sink.tcp {
        log::info!("sink listening on tcp {t}");
    }
    if let Some(u) = sink.udp {
        log::info!("sink listening on udp {u}");
    }
    log::info!("sink ready");
    let start = Instant::now();
    let mut progress = Progress::new("sink", "received");
    let mut last_check = (Instant::now(), 0u64);
    let why = loop {
        std::thread::sleep(Duration::from_millis(20));
        let frames = sink.live.frames.load(Ordering::Relaxed);
        if !a.quiet {
            let conns = sink.live.connections.load(Ordering::Relaxed);
            progress.tick(frames, &format!("  {conns} connection(s)"));
        }
        if stop.load(Ordering::Relaxed) {
            break "signal";
        }
        if a.count.is_some_and(|c| frames >= c) {
            break "count reached";
        }
        if a.duration.is_some_and(|d| start.elapsed() >= d) {
            break "duration over";
        }
        let last = sink.live.last_ns.load(Ordering::Relaxed);
        if !a.idle.is_zero() && last > 0 {
            let idle_ns = send::now_ns().saturating_sub(last);
            if idle_ns >= a.idle.as_nanos() as u64 {
                break "idle";
            }
        }
        // Completeness needs a merge of every thread's tally: check at most
        // four times a second, and only when something new arrived.
        if !a.keep_running
            && frames > last_check.1
            && last_check.0.elapsed() >= Duration::from_millis(250)
        {
            last_check = (Instant::now(), frames);
            let runs = sink.snapshot().runs();
            if !runs.is_empty() && runs.iter().all(|r| r.complete) {
                break "every run complete";
            }
        }
    };
    log::info!("sink: stopping ({why})");
    let report = SinkReport::from_tally(&sink.snapshot());
    print_report(a.json, &report, || report.table());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_si_suffixes() {
        assert_eq!(parse_count("1M"), Ok(1_000_000));
        assert_eq!(parse_count("100k"), Ok(100_000));
        assert_eq!(parse_count("42"), Ok(42));
        assert!(parse_count("x").is_err());
        assert!(parse_count("99999999999G").is_err());
    }
}
