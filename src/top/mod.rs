//! `sluice top`: a live terminal view of a running sluice.
//!
//! Receives nothing from the pipeline itself: it scrapes the `/metrics`
//! endpoint of a running sluice every interval ([`prom`] parses the text),
//! turns two successive scrapes into rates and latency quantiles
//! ([`rates`]) and paints them ([`view`]). The scraper runs on its own
//! thread so that a slow or dead endpoint never freezes the screen or the
//! `q` key. Must never touch the watched sluice beyond an HTTP GET.

pub mod prom;
pub mod rates;
pub mod view;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use crossbeam_channel::{Receiver, TryRecvError};
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use prom::Scrape;
use rates::Stats;
use view::Status;

/// One scrape's result: when it started, and the body or the error.
type Scraped = (Instant, Result<String, String>);

/// Runs the view until `q` (or Esc, or Ctrl-C) is pressed.
pub fn run(url: &str, every: Duration) -> anyhow::Result<()> {
    if !url.starts_with("http://") {
        bail!(
            "--url {url}: only http:// endpoints are supported (sluice serves /metrics over plain HTTP)"
        );
    }
    let rx = spawn_scraper(url.to_string(), every);
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let result = ui_loop(&mut terminal, &rx, url, every);
    ratatui::restore();
    result
}

/// Scrapes `url` every `every` on a thread of its own until the receiver
/// is gone.
fn spawn_scraper(url: String, every: Duration) -> Receiver<Scraped> {
    let (tx, rx) = crossbeam_channel::bounded(2);
    // A scrape may take up to one interval (at least a second) before it
    // counts as failed.
    let timeout = every.max(Duration::from_secs(1));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .into();
    std::thread::Builder::new()
        .name("top-scrape".into())
        .spawn(move || {
            loop {
                let started = Instant::now();
                let res = agent
                    .get(&url)
                    .call()
                    .and_then(|mut r| r.body_mut().read_to_string())
                    .map_err(|e| e.to_string());
                if tx.send((started, res)).is_err() {
                    return;
                }
                let next = started + every;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        })
        .expect("spawn the scrape thread");
    rx
}

fn ui_loop(
    terminal: &mut DefaultTerminal,
    rx: &Receiver<Scraped>,
    url: &str,
    every: Duration,
) -> anyhow::Result<()> {
    let mut prev: Option<(Instant, Scrape)> = None;
    let mut stats: Option<Stats> = None;
    let mut last_ok: Option<Instant> = None;
    let mut status = Status {
        url: url.to_string(),
        every_secs: every.as_secs_f64(),
        ..Default::default()
    };
    loop {
        loop {
            match rx.try_recv() {
                Ok((at, Ok(body))) => {
                    let now = Scrape::parse(&body);
                    let client_dt = prev
                        .as_ref()
                        .map_or(0.0, |(t, _)| at.duration_since(*t).as_secs_f64());
                    stats = Some(Stats::compute(
                        prev.as_ref().map(|(_, s)| s),
                        &now,
                        client_dt,
                    ));
                    status.bad_lines = now.bad_lines;
                    status.error = None;
                    last_ok = Some(at);
                    prev = Some((at, now));
                }
                Ok((_, Err(e))) => status.error = Some(e),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => bail!("the scrape thread stopped"),
            }
        }
        status.last_ok_age = last_ok.map(|t| t.elapsed().as_secs_f64());
        terminal.draw(|f| view::draw(f, stats.as_ref(), &status))?;
        if event::poll(Duration::from_millis(100))?
            && let Event::Key(k) = event::read()?
            && k.kind == KeyEventKind::Press
        {
            let quit = matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
                || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL));
            if quit {
                return Ok(());
            }
        }
    }
}
