//! The command line: `sluice run`, `sluice check-config`, `sluice archive`,
//! and friends.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;
use crate::pipeline::Pipeline;

/// sluice: a fast syslog pipeline (receive, parse, classify, enrich,
/// forward).
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the pipeline (with the embedded default config when no
    /// --config is given: UDP and TCP on 127.0.0.1:5514, NDJSON on stdout).
    Run {
        /// The TOML config file.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Check a config file and report every problem with its line.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Print the embedded default config.
    DefaultConfig,
    /// The embedded archive: keygen, verify, search, stats.
    Archive {
        #[command(subcommand)]
        command: crate::archive::cli::ArchiveCommand,
    },
    /// Send realistic, stamped syslog traffic (load testing; see `sluice
    /// sink` for the receiving side).
    Load(crate::load::LoadArgs),
    /// Receive what a pipeline forwards and report throughput, loss,
    /// duplicates and end-to-end latency of `sluice load` traffic.
    Sink(crate::load::SinkArgs),
    /// Live view of a running sluice, read from its /metrics endpoint:
    /// records/s per input, stage and output, drops by reason, queue
    /// depths, p50/p99 latency, identity-table size. `q` quits.
    Top {
        /// The metrics endpoint of the sluice to watch.
        #[arg(long, default_value = "http://127.0.0.1:9598/metrics")]
        url: String,
        /// Time between scrapes, e.g. "1s", "500ms".
        #[arg(long, default_value = "1s", value_parser = parse_interval)]
        interval: std::time::Duration,
    },
    /// Write the man pages (sluice.8 and one per subcommand) into DIR.
    #[command(hide = true)]
    Man {
        /// Directory to write the pages into (created if missing).
        dir: PathBuf,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    crate::logging::init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run(config),
        Command::CheckConfig { file } => match config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!("{}: {} problem(s)", file.display(), e.errors.len());
                ExitCode::from(1)
            }
        },
        Command::Archive { command } => crate::archive::cli::run(command),
        Command::DefaultConfig => {
            print!("{}", config::DEFAULT_CONFIG);
            ExitCode::SUCCESS
        }
        Command::Load(args) => crate::load::load_main(args),
        Command::Sink(args) => crate::load::sink_main(args),
        Command::Top { url, interval } => match crate::top::run(&url, interval) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sluice top: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Man { dir } => match write_man_pages(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sluice man: {}: {e}", dir.display());
                ExitCode::from(1)
            }
        },
    }
}

fn run(path: Option<PathBuf>) -> ExitCode {
    let cfg = match &path {
        Some(p) => config::load(p),
        None => config::parse(config::DEFAULT_CONFIG, "<embedded default>"),
    };
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    // Signals are caught before anything starts, so an early SIGTERM is
    // still a clean shutdown.
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ]) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let mut pipeline = match Pipeline::start(&cfg) {
        Ok(p) => p,
        Err(e) => {
            log::error!("{e:#}");
            return ExitCode::from(1);
        }
    };
    for (name, proto, addr) in &pipeline.addrs {
        log::info!("input \"{name}\" listening on {proto} {addr}");
    }
    if let Some(a) = pipeline.metrics_addr {
        log::info!("metrics on http://{a}/metrics");
    }
    log::info!("ready");
    crate::notify::ready(&format!(
        "receiving on {} input(s), forwarding to {} output(s)",
        pipeline.addrs.len(),
        cfg.outputs.len()
    ));
    for sig in signals.forever() {
        match sig {
            signal_hook::consts::SIGHUP => {
                // systemd keeps the unit "reloading" until READY=1, which
                // comes whether the new config was applied or refused.
                crate::notify::reloading();
                let refused = pipeline.metrics.config_reload_failures.get();
                reload(&mut pipeline, path.as_deref());
                crate::notify::ready(if pipeline.metrics.config_reload_failures.get() > refused {
                    "reload refused (see the log); the previous config keeps running"
                } else {
                    "config reloaded"
                });
            }
            _ => {
                log::info!("signal {sig}: stopping; draining queues");
                crate::notify::stopping();
                break;
            }
        }
    }
    pipeline.shutdown();
    log::info!("stopped");
    ExitCode::SUCCESS
}

/// Writes `sluice.8` and `sluice-<subcommand>.8` (visible subcommands) into
/// `dir`, generated from the clap definition so they never drift from
/// `--help`. Section 8: sluice is a system daemon, like rsyslogd(8).
fn write_man_pages(dir: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let mut cmd = Cli::command();
    // Building names each subcommand `sluice-<name>` for its page title.
    cmd.build();
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        clap_mangen::Man::new(sub.clone())
            .section("8")
            .generate_to(dir)?;
    }
    let cmd = cmd.long_about(MAN_DESCRIPTION);
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).section("8").render(&mut page)?;
    page.extend_from_slice(MAN_SECTIONS.as_bytes());
    std::fs::write(dir.join("sluice.8"), page)
}

const MAN_DESCRIPTION: &str = "sluice receives syslog over UDP, TCP and TLS, parses it \
(RFC 5424, RFC 3164 and its variants, JSON, CEF), classifies and enriches each record, \
and forwards selected records to syslog peers, files, stdout and its archive. Every \
record that is not delivered is counted under a reason; the counters are served in \
Prometheus form and shown live by sluice top.";

/// The man page's sections that clap does not know about (roff).
const MAN_SECTIONS: &str = r#".SH FILES
.TP
/etc/sluice/sluice.toml
The config the packaged service runs (a conffile); check it with
\fBsluice check-config /etc/sluice/sluice.toml\fR.
.TP
/var/lib/sluice
The service's state directory (archive, disk queues), owned by the
\fBsluice\fR user.
.TP
/usr/share/doc/sluice/
Example configs, the Flowmon identity rules and the Grafana dashboard.
.SH SIGNALS
.TP
SIGHUP
Reload the config (\fBsystemctl reload sluice\fR).
.TP
SIGTERM, SIGINT
Stop accepting, drain the queues (up to shutdown_timeout), exit.
.SH EXIT STATUS
0 after a clean stop or a config that checks; 1 when the config does not
check or an input cannot listen.
.SH SEE ALSO
\fBsystemctl\fR(1), \fBsystemd.exec\fR(5), \fBrsyslogd\fR(8), \fBsyslog-ng\fR(8)
"#;

/// `--interval`: a duration as the config writes it ("1s", "500ms"), at
/// least 100 ms so that a scrape never overlaps the next.
fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    match config::HumanDuration::parse(s) {
        Some(d) if d.0 >= std::time::Duration::from_millis(100) => Ok(d.0),
        Some(_) => Err("must be at least 100ms".into()),
        None => Err(format!(
            "\"{s}\" is not a duration such as \"1s\" or \"500ms\""
        )),
    }
}

/// SIGHUP: re-reads the config file and applies it; a config that does not
/// check, or cannot be applied, changes nothing and is reported.
fn reload(pipeline: &mut Pipeline, path: Option<&std::path::Path>) {
    let Some(path) = path else {
        log::info!("SIGHUP: running on the embedded default config; nothing to reload");
        return;
    };
    log::info!("SIGHUP: reloading {}", path.display());
    let new = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            pipeline.metrics.config_reload_failures.inc();
            for line in e.to_string().lines() {
                log::error!("reload refused: {line}");
            }
            log::error!(
                "reload refused: {} problem(s); the running config stays",
                e.errors.len()
            );
            return;
        }
    };
    match pipeline.reload(&new) {
        Ok(r) => {
            for s in &r.restart_needed {
                log::warn!("reload: changes to {s} need a restart and were not applied");
            }
            log::info!(
                "reloaded: inputs +{:?} -{:?}, outputs +{:?} ~{:?} -{:?}",
                r.inputs_added,
                r.inputs_removed,
                r.outputs_added,
                r.outputs_changed,
                r.outputs_removed
            );
        }
        Err(e) => {
            pipeline.metrics.config_reload_failures.inc();
            log::error!("reload refused: {e:#}; the running config stays");
        }
    }
}
