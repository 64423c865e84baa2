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
    let pipeline = match Pipeline::start(&cfg) {
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
    for sig in signals.forever() {
        match sig {
            signal_hook::consts::SIGHUP => {
                log::warn!("SIGHUP: live reload is not built yet; config unchanged");
            }
            _ => {
                log::info!("signal {sig}: stopping; draining queues");
                break;
            }
        }
    }
    pipeline.shutdown();
    log::info!("stopped");
    ExitCode::SUCCESS
}
