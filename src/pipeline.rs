//! The pipeline: builds every stage from a checked config, wires them, and
//! applies a new config live.
//!
//! input workers → classify → enrich → forward (dispatcher) → outputs, over
//! bounded crossbeam channels of batches. Shutdown closes the chain from the
//! front: workers stop accepting, read what is buffered and exit; each stage
//! passes on everything and exits when its input closes; outputs deliver
//! their queues and exit.
//!
//! Reload (SIGHUP) does every fallible step first (compile rules, bind new
//! inputs, start new or changed outputs) and changes nothing if one fails.
//! Then it swaps, between batches: the class and input names (append-only,
//! so ids in flight stay right), classify's rules, enrich's rules (the
//! identity table is kept), the dispatcher's output list, and the workers'
//! inputs. Inputs whose protocol and address did not change keep their
//! sockets and connections. An output whose config did not change keeps
//! running; a changed one is replaced by a new one that first waits for the
//! old one to finish its queue, so every record is written once, in order.
//! `[pipeline]` and `[metrics]` changes need a restart and are reported.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use crossbeam_channel::Sender;

use crate::batch::Pool;
use crate::classify::{Classifier, class_names};
use crate::config::{Config, InputConfig, OutputConfig};
use crate::encode::{Names, SharedNames};
use crate::enrich::Enricher;
use crate::forward::{Dispatcher, OutputHandle, start_output};
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::metrics::http::MetricsServer;
use crate::receive::{
    InputSockets, ParseShare, Workers, bind_input, bind_inputs, proto_name, runtime_of,
    spawn_workers,
};
use crate::stage::Update;

/// A running output and the config it was started from.
struct RunningOutput {
    cfg: OutputConfig,
    handle: OutputHandle,
    thread: JoinHandle<()>,
}

/// A running pipeline.
pub struct Pipeline {
    cfg: Config,
    names: SharedNames,
    workers: Option<Workers>,
    stages: Vec<JoinHandle<()>>,
    outputs: Vec<RunningOutput>,
    /// Threads of outputs a reload removed (joined at shutdown).
    retired: Vec<JoinHandle<()>>,
    /// Input id of each current input, in config order.
    input_ids: Vec<u16>,
    classify_tx: Sender<Update<Classifier>>,
    enrich_tx: Sender<Update<Enricher>>,
    outputs_tx: Sender<Vec<OutputHandle>>,
    pub metrics: Arc<Metrics>,
    /// (input name, protocol, bound address).
    pub addrs: Vec<(String, &'static str, SocketAddr)>,
    metrics_server: Option<MetricsServer>,
    pub metrics_addr: Option<SocketAddr>,
    pub pool: Arc<Pool>,
}

/// The names encoders and matchers use for `cfg`.
pub fn names_for(cfg: &Config) -> Names {
    Names::new(
        cfg.inputs.iter().map(|i| i.name.clone()).collect(),
        class_names(&cfg.classify),
    )
}

/// What a reload changed, for the log.
#[derive(Debug, Default)]
pub struct ReloadReport {
    pub inputs_added: Vec<String>,
    pub inputs_removed: Vec<String>,
    pub outputs_added: Vec<String>,
    pub outputs_changed: Vec<String>,
    pub outputs_removed: Vec<String>,
    /// Sections whose changes need a restart.
    pub restart_needed: Vec<&'static str>,
}

impl Pipeline {
    /// Binds, builds and starts everything. Errors name what failed.
    pub fn start(cfg: &Config) -> anyhow::Result<Pipeline> {
        let names: SharedNames = Arc::new(ArcSwap::from_pointee(names_for(cfg)));
        let cur = names.load_full();
        let metrics = Metrics::new(
            cur.inputs(),
            &cfg.outputs
                .iter()
                .map(|o| o.name.clone())
                .collect::<Vec<_>>(),
        );
        let q = cfg.pipeline.queue_batches.max(1);
        // Enough spare batches for every queue to be full.
        let pool = Pool::new(q * 4 + cfg.outputs.len() * 64 + cfg.pipeline.workers * 2 + 16);

        let classifier = Classifier::new(&cfg.classify, &cur).map_err(anyhow::Error::msg)?;
        // The classifier keeps its counters across reloads (`take_rules`).
        let classify_stats = classifier.stats();
        metrics
            .extra
            .lock()
            .push(Arc::new(move |out: &mut String| classify_stats.render(out)));
        let identity = cfg.identity.enabled.then(|| Identity::new(&cfg.identity));
        let enricher = Enricher::new(&cfg.enrich, &cur, identity).map_err(anyhow::Error::msg)?;
        *metrics.identity.lock() = enricher.identity_stats();
        // Whatever identity table is current at scrape time.
        let weak = Arc::downgrade(&metrics);
        metrics.extra.lock().push(Arc::new(move |out: &mut String| {
            if let Some(m) = weak.upgrade()
                && let Some(id) = m.identity.lock().as_ref()
            {
                id.render_extra(out);
            }
        }));

        let timeout = cfg.pipeline.shutdown_timeout.0;
        crate::archive::writer::expose_metrics(&metrics);
        let mut outputs = Vec::new();
        for o in &cfg.outputs {
            let om = metrics.output(&o.name).expect("created above");
            let s = start_output(o, om, names.clone(), timeout, None)?;
            outputs.push(RunningOutput {
                cfg: o.clone(),
                handle: s.handle,
                thread: s.thread,
            });
        }

        let bound = bind_inputs(cfg)?;
        let addrs = bound.addrs.clone();

        let (to_classify, classify_rx) = crossbeam_channel::bounded(q);
        let (to_enrich, enrich_rx) = crossbeam_channel::bounded(q);
        let (to_forward, forward_rx) = crossbeam_channel::bounded(q);
        let (classify_tx, classify_swap) = crossbeam_channel::unbounded();
        let (enrich_tx, enrich_swap) = crossbeam_channel::unbounded();
        let (outputs_tx, outputs_swap) = crossbeam_channel::unbounded();
        let share = ParseShare::new(cfg.pipeline.workers);
        let share_c = share.clone();
        let mut stages = Vec::new();
        stages.push(crate::stage::spawn(
            "classify",
            classifier,
            Some(classify_swap),
            classify_rx,
            to_enrich,
            metrics.clone(),
            Some(Arc::new(move |next| share_c.release(next))),
        )?);
        stages.push(crate::stage::spawn(
            "enrich",
            enricher,
            Some(enrich_swap),
            enrich_rx,
            to_forward,
            metrics.clone(),
            None,
        )?);
        let d = Dispatcher {
            outputs: outputs.iter().map(|o| o.handle.clone()).collect(),
            pool: pool.clone(),
            metrics: metrics.clone(),
        };
        stages.push(
            std::thread::Builder::new()
                .name("forward".into())
                .spawn(move || d.run(forward_rx, Some(outputs_swap)))?,
        );

        {
            let pool = pool.clone();
            metrics.extra.lock().push(Arc::new(move |out: &mut String| {
                use std::fmt::Write as _;
                let _ = writeln!(
                    out,
                    "# HELP sluice_batches_created_total Batches (buffers and arena) allocated.\n\
                     # TYPE sluice_batches_created_total counter\n\
                     sluice_batches_created_total {}\n\
                     # HELP sluice_batches_freed_total Batches freed instead of reused (pool full).\n\
                     # TYPE sluice_batches_freed_total counter\n\
                     sluice_batches_freed_total {}\n\
                     # HELP sluice_batches_spare Batches waiting in the pool for reuse.\n\
                     # TYPE sluice_batches_spare gauge\n\
                     sluice_batches_spare {}",
                    pool.created(),
                    pool.freed(),
                    pool.spare()
                );
            }));
        }
        let metrics_server = match &cfg.metrics.listen {
            Some(l) => Some(
                MetricsServer::start(l.parse()?, metrics.clone())
                    .map_err(|e| anyhow::anyhow!("[metrics] listen {l}: {e}"))?,
            ),
            None => None,
        };
        let metrics_addr = metrics_server.as_ref().map(|s| s.addr);
        // The workers get the only sender to classify: when they exit, the
        // chain closes.
        let workers = spawn_workers(
            cfg,
            bound,
            to_classify,
            pool.clone(),
            metrics.clone(),
            share,
        )?;
        Ok(Pipeline {
            cfg: cfg.clone(),
            names,
            workers: Some(workers),
            stages,
            outputs,
            retired: Vec::new(),
            input_ids: (0..cfg.inputs.len() as u16).collect(),
            classify_tx,
            enrich_tx,
            outputs_tx,
            metrics,
            addrs,
            metrics_server,
            metrics_addr,
            pool,
        })
    }

    /// Applies `new` live. On error nothing has changed.
    pub fn reload(&mut self, new: &Config) -> anyhow::Result<ReloadReport> {
        let mut report = ReloadReport::default();
        if new.pipeline != self.cfg.pipeline {
            report.restart_needed.push("[pipeline]");
        }
        if new.metrics != self.cfg.metrics {
            report.restart_needed.push("[metrics]");
        }
        let old_names = self.names.load_full();

        // Names: ids only ever get added.
        let mut classes = old_names.classes().to_vec();
        for c in class_names(&new.classify) {
            if !classes.contains(&c) {
                classes.push(c);
            }
        }
        // Inputs: same protocol and address keeps the socket and the id
        // (an ephemeral port 0 also needs the same name).
        let same = |a: &InputConfig, b: &InputConfig| {
            proto_name(a.kind) == proto_name(b.kind)
                && a.listen == b.listen
                && (!a.listen.ends_with(":0") || a.name == b.name)
        };
        let mut input_names = old_names.inputs().to_vec();
        let mut ids = Vec::new();
        let mut to_bind = Vec::new();
        for i in &new.inputs {
            match self.cfg.inputs.iter().position(|o| same(o, i)) {
                Some(k) => {
                    let id = self.input_ids[k];
                    input_names[id as usize] = i.name.clone();
                    ids.push(id);
                }
                None => {
                    let id = input_names.len() as u16;
                    input_names.push(i.name.clone());
                    ids.push(id);
                    to_bind.push((id, i));
                }
            }
        }
        let removed: Vec<u16> = self
            .input_ids
            .iter()
            .copied()
            .filter(|id| !ids.contains(id))
            .collect();
        let names = Names::new(input_names, classes);

        // Fallible work first.
        let classifier = Classifier::new(&new.classify, &names).map_err(anyhow::Error::msg)?;
        let enricher = Enricher::new(
            &new.enrich,
            &names,
            new.identity.enabled.then(|| Identity::new(&new.identity)),
        )
        .map_err(anyhow::Error::msg)?;
        let mut runtime = Vec::new();
        for (id, name) in names.inputs().iter().enumerate() {
            let id = id as u16;
            match ids.iter().position(|&x| x == id) {
                Some(k) => runtime.push(runtime_of(id, &new.inputs[k])?),
                // A removed input keeps its slot, with its old settings.
                None => {
                    let old = self
                        .input_ids
                        .iter()
                        .position(|&x| x == id)
                        .map(|k| &self.cfg.inputs[k]);
                    match old {
                        Some(o) => runtime.push(runtime_of(id, o)?),
                        None => anyhow::bail!("internal: input id {id} ({name}) has no config"),
                    }
                }
            }
        }
        let workers = self.workers.as_ref().map_or(1, Workers::count);
        let mut bound: Vec<(u16, InputSockets)> = Vec::new();
        let mut new_addrs = Vec::new();
        for (id, i) in &to_bind {
            let (socks, addr) = bind_input(i, workers)?;
            bound.push((*id, socks));
            new_addrs.push((i.name.clone(), proto_name(i.kind), addr));
        }
        let shared_names = self.names.clone();
        // Publish the names before anything can produce the new ids.
        self.names.store(Arc::new(names.clone()));
        let out_metrics = self.metrics.set_outputs(
            &new.outputs
                .iter()
                .map(|o| o.name.clone())
                .collect::<Vec<_>>(),
        );
        type Gate = Sender<Option<JoinHandle<()>>>;
        let mut started: Vec<(usize, crate::forward::StartedOutput, Gate)> = Vec::new();
        let timeout = new.pipeline.shutdown_timeout.0;
        for (k, o) in new.outputs.iter().enumerate() {
            let unchanged = self.outputs.iter().any(|r| r.cfg == *o);
            if unchanged {
                continue;
            }
            let (gate_tx, gate_rx) = crossbeam_channel::bounded(1);
            match start_output(
                o,
                out_metrics[k].clone(),
                shared_names.clone(),
                timeout,
                Some(gate_rx),
            ) {
                Ok(s) => started.push((k, s, gate_tx)),
                Err(e) => {
                    // Undo: stop what was started, restore names and metrics.
                    drop(started);
                    self.names.store(old_names.clone());
                    self.metrics.set_outputs(
                        &self
                            .cfg
                            .outputs
                            .iter()
                            .map(|o| o.name.clone())
                            .collect::<Vec<_>>(),
                    );
                    return Err(e);
                }
            }
        }

        // Commit.
        let mut old_outputs: Vec<RunningOutput> = std::mem::take(&mut self.outputs);
        let mut fresh = started.into_iter().peekable();
        for (k, o) in new.outputs.iter().enumerate() {
            if let Some(pos) = old_outputs.iter().position(|r| r.cfg == *o) {
                self.outputs.push(old_outputs.remove(pos));
                continue;
            }
            let (_, s, gate) = fresh.next().expect("started above, in order");
            debug_assert_eq!(s.handle.name, new.outputs[k].name);
            // The replaced output of the same name finishes first: the new
            // thread joins it before taking any record.
            let predecessor = old_outputs
                .iter()
                .position(|r| r.cfg.name == o.name)
                .map(|p| old_outputs.remove(p));
            match predecessor {
                Some(p) => {
                    report.outputs_changed.push(o.name.clone());
                    let _ = gate.send(Some(p.thread));
                }
                None => {
                    report.outputs_added.push(o.name.clone());
                    let _ = gate.send(None);
                }
            }
            self.outputs.push(RunningOutput {
                cfg: o.clone(),
                handle: s.handle,
                thread: s.thread,
            });
        }
        for r in old_outputs {
            report.outputs_removed.push(r.cfg.name.clone());
            self.retired.push(r.thread);
        }
        let input_metrics = self.metrics.set_inputs(names.inputs());
        self.metrics.retire_inputs(&removed);
        let _ = self
            .classify_tx
            .send(Box::new(move |c: &mut Classifier| c.take_rules(classifier)));
        let identity_cfg = new.identity.clone();
        // The enricher keeps its table when identity stays on; a table that
        // a reload turns on or off changes what /metrics shows.
        match (self.cfg.identity.enabled, new.identity.enabled) {
            (false, true) => *self.metrics.identity.lock() = enricher.identity_stats(),
            (true, false) => *self.metrics.identity.lock() = None,
            _ => {}
        }
        let _ = self.enrich_tx.send(Box::new(move |e: &mut Enricher| {
            e.take_rules(enricher, &identity_cfg)
        }));
        let _ = self
            .outputs_tx
            .send(self.outputs.iter().map(|o| o.handle.clone()).collect());
        if let Some(w) = &self.workers {
            w.update_inputs(Arc::new(runtime), input_metrics, bound, removed.clone());
        }
        for id in &removed {
            if let Some(k) = self.input_ids.iter().position(|x| x == id) {
                report.inputs_removed.push(self.cfg.inputs[k].name.clone());
            }
        }
        report.inputs_added = new_addrs.iter().map(|a| a.0.clone()).collect();
        for (name, proto, addr) in &new_addrs {
            log::info!("input \"{name}\" listening on {proto} {addr}");
        }
        self.addrs
            .retain(|a| new.inputs.iter().any(|i| i.name == a.0));
        self.addrs.extend(new_addrs);
        self.input_ids = ids;
        self.cfg = new.clone();
        self.metrics.config_reloads.inc();
        Ok(report)
    }

    /// Stops accepting, drains every queue to the outputs, and returns when
    /// all threads have finished.
    pub fn shutdown(mut self) {
        if let Some(w) = self.workers.take() {
            w.stop_and_join();
        }
        // The dispatcher holds the other output senders; ours go first so
        // that its exit closes every output queue.
        let outputs: Vec<JoinHandle<()>> = self.outputs.drain(..).map(|o| o.thread).collect();
        drop(self.outputs_tx);
        for h in self.stages.drain(..) {
            let _ = h.join();
        }
        for h in self.retired.drain(..).chain(outputs) {
            let _ = h.join();
        }
        if let Some(s) = self.metrics_server.take() {
            s.stop();
        }
    }
}
