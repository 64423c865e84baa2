//! The Grafana dashboard the package ships (contrib/grafana/sluice.json):
//! every query it makes is valid PromQL over metrics sluice really exports,
//! and returns series from a real Prometheus scraping a real sluice.

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn dashboard() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/grafana/sluice.json");
    let text = std::fs::read_to_string(path).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// `(panel title, expr)` of every query in the dashboard.
fn queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or("").to_string(),
                t["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    out
}

/// The `sluice_*` metric families an expression reads (histogram series
/// named by their family).
fn families(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("sluice_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        let fam = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name)
            .to_string();
        out.push(fam);
    }
    out
}

/// Grafana's variables, as Grafana would fill them in for a short range.
fn grafana_vars(expr: &str) -> String {
    expr.replace("$__rate_interval", "10s")
        .replace("$__range", "1m")
        .replace("$instance", ".*")
}

#[test]
fn the_dashboard_is_importable_grafana_json() {
    let d = dashboard();
    assert_eq!(d["uid"], "sluice-overview");
    assert!(d["title"].is_string());
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && v["name"] == "datasource"),
        "a Prometheus data-source variable, so the import asks for none by name"
    );
    let mut ids = std::collections::HashSet::new();
    for p in d["panels"].as_array().unwrap() {
        assert!(
            ids.insert(p["id"].as_i64().unwrap()),
            "panel ids are unique"
        );
        let g = &p["gridPos"];
        assert!(
            g["x"].as_i64().unwrap() + g["w"].as_i64().unwrap() <= 24,
            "{p}"
        );
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            assert!(
                !p["targets"].as_array().unwrap().is_empty(),
                "{}",
                p["title"]
            );
        }
    }
    assert!(queries(&d).len() >= 30);
}

struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// A real Prometheus scraping `target` every second.
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        let mut f = std::fs::File::create(&cfg).unwrap();
        write!(
            f,
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: sluice\n    static_configs:\n      - targets: ['{target}']\n"
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run prometheus (scripts/deps.sh installs it)");
        let p = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        let ready = wait_until(Duration::from_secs(30), || {
            ureq::get(format!("http://{}/-/ready", p.addr))
                .call()
                .is_ok()
        });
        assert!(ready, "prometheus did not become ready");
        p
    }

    /// An instant query; the `data` object of the answer.
    fn query(&self, expr: &str) -> Value {
        let body = ureq::get(format!("http://{}/api/v1/query", self.addr))
            .query("query", expr)
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .expect("query prometheus")
            .body_mut()
            .read_to_string()
            .unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{expr}: {body}");
        v["data"].clone()
    }
}

#[test]
fn every_dashboard_query_returns_series_from_prometheus_scraping_sluice() {
    let s = Sluice::start(&basic_config(""));
    let target = s.metrics.expect("metrics").to_string();

    // Every metric family the dashboard reads is one sluice exports.
    let text = s.scrape();
    let d = dashboard();
    for (title, expr) in queries(&d) {
        for fam in families(&expr) {
            assert!(
                text.contains(&format!("# TYPE {fam} ")),
                "panel {title:?} reads {fam}, which /metrics does not export"
            );
        }
    }

    // And every family sluice exports has a panel (uptime included).
    let used: std::collections::HashSet<String> =
        queries(&d).iter().flat_map(|(_, e)| families(e)).collect();
    for line in text.lines() {
        if let Some(fam) = line
            .strip_prefix("# TYPE ")
            .and_then(|r| r.split(' ').next())
        {
            assert!(
                used.contains(fam),
                "/metrics exports {fam}, which no panel of contrib/grafana/sluice.json shows: add one"
            );
        }
    }

    // Traffic, so that rates and latency histograms have something in them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let addr = s.addr("tcp");
    let sender = std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let mut n = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            writeln!(c, "<13>1 - web01 app - - - dashboard test {n}").unwrap();
            n += 1;
            if n % 50 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });

    let prom = Prometheus::start(&target);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pending = queries(&d);
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|(_, expr)| {
            let data = prom.query(&grafana_vars(expr));
            data["result"].as_array().is_none_or(|r| r.is_empty())
        });
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert!(
        pending.is_empty(),
        "queries without series after 60 s:\n{pending:#?}"
    );
    // The instance variable (label_values(sluice_uptime_seconds, instance))
    // lists this sluice.
    let body = ureq::get(format!("http://{}/api/v1/label/instance/values", prom.addr))
        .query("match[]", "sluice_uptime_seconds")
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"], serde_json::json!([target]), "{body}");
    let received = prom.query(&grafana_vars(
        "sum(rate(sluice_input_records_total{instance=~\"$instance\"}[$__rate_interval]))",
    ));
    let v: f64 = received["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(v > 0.0, "the received-records panel shows the traffic: {v}");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.join().unwrap();
}
