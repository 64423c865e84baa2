//! What the benches share: the checked-in fixtures, a realistic config
//! (classify and enrich rules of a security team's appliance), and the
//! stages built from it exactly as the pipeline builds them.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::Criterion;
use sluice::batch::BatchOwner;
use sluice::classify::Classifier;
use sluice::config::Config;
use sluice::encode::{Encoder, Format, Framing, Names};
use sluice::enrich::Enricher;
use sluice::identity::Identity;
use sluice::parse::Parser;
use sluice::time::Timestamp;

/// A fixture from `benches/fixtures/`, read before any timing starts.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/benches/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The LF-separated lines of a fixture.
pub fn lines(buf: &[u8]) -> Vec<&[u8]> {
    buf.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

/// The same messages octet-counted (RFC 6587 section 3.4.1).
pub fn octet_counted(lines: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.len().to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(l);
    }
    out
}

/// Records per batch, as `[pipeline] batch_records` defaults.
pub const BATCH: usize = 512;

/// Rules an appliance runs: classes by content, the Flowmon event link,
/// a note on failed logons, a site tag on everything, and identity.
pub const CONFIG: &str = r#"
[[input]]
name = "tcp"
type = "tcp"
listen = "127.0.0.1:0"

[[output]]
name = "fwd"
type = "syslog"
target = "127.0.0.1:1"

[[classify]]
class = "windows"
match = { eventid = ["4624", "4625", "4634", "4768"] }

[[classify]]
class = "flowmon-ads"
contains = "|Flowmon Networks|"

[[classify]]
class = "linux-auth"
match = { app = "sshd" }

[[classify]]
class = "cef"
contains = "CEF:0|"

[[enrich]]
name = "flowmon link"
match = { class = "flowmon-ads" }
set = { event_url = "https://flowmon01/adsplug/events/?_adsLink=tab%2AEvents.SimpleList%7CeventDetail%5B0%5D%2A{eventid}" }

[[enrich]]
name = "failed logon"
match = { class = "windows", eventid = "4625" }
set = { alert = "failed logon of {targetusername} from {ipaddress}" }

[[enrich]]
name = "site"
set = { site = "prague-dc1", collector = "{meta.host}" }
"#;

pub fn config() -> Config {
    sluice::config::parse(CONFIG, "bench.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// Every stage of the pipeline, built from [`CONFIG`].
pub struct Stages {
    pub parser: Parser,
    pub classifier: Classifier,
    pub enricher: Enricher,
    pub names: Names,
    pub encoder: Encoder,
}

impl Stages {
    pub fn new() -> Stages {
        let cfg = config();
        let names = sluice::pipeline::names_for(&cfg);
        let classifier = Classifier::new(&cfg.classify, &names).expect("classify rules");
        let identity = cfg.identity.enabled.then(|| Identity::new(&cfg.identity));
        let enricher = Enricher::new(&cfg.enrich, &names, identity).expect("enrich rules");
        Stages {
            parser: Parser::with_offset(0),
            classifier,
            enricher,
            names,
            encoder: Encoder::new(Format::V2, Framing::Lf),
        }
    }
}

pub fn src() -> SocketAddr {
    "10.0.9.1:514".parse().expect("static address")
}

/// Fills `owner` with `lines` as frames, as an input worker does.
pub fn fill(owner: &mut BatchOwner, lines: &[&[u8]]) {
    owner.clear();
    let now = Timestamp::now();
    for l in lines {
        owner.push_frame(l, src(), now, 0, 0);
    }
}

/// Accumulates only the parts of a benchmark iteration it is started
/// around.
#[derive(Default)]
pub struct Stopwatch {
    pub total: Duration,
    started: Option<Instant>,
}

impl Stopwatch {
    #[inline]
    pub fn start(&mut self) {
        self.started = Some(Instant::now());
    }
    #[inline]
    pub fn stop(&mut self) {
        if let Some(t) = self.started.take() {
            self.total += t.elapsed();
        }
    }
}

/// Runs `work` on the fixture in batches of [`BATCH`] frames, `iters`
/// times; returns the time `work` spent between its `start` and `stop`.
/// Filling each batch is never timed; owners are recycled as the
/// pipeline's pool does.
pub fn time_batches(
    iters: u64,
    lines: &[&[u8]],
    stages: &mut Stages,
    mut work: impl FnMut(&mut Stages, BatchOwner, &mut Stopwatch) -> BatchOwner,
) -> Duration {
    let mut spare: Vec<BatchOwner> = Vec::new();
    let mut watch = Stopwatch::default();
    for _ in 0..iters {
        for chunk in lines.chunks(BATCH) {
            let mut owner = spare.pop().unwrap_or_default();
            fill(&mut owner, chunk);
            spare.push(work(stages, owner, &mut watch));
        }
    }
    watch.total
}

/// Short runs: these benches compare code versions, not machines.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}
