//! The pipeline: builds every stage from a checked config and wires them.
//!
//! input workers → classify → enrich → forward (dispatcher) → outputs, over
//! bounded crossbeam channels of batches. Shutdown closes the chain from the
//! front: workers stop accepting, read what is buffered and exit; each stage
//! passes on everything and exits when its input closes; outputs deliver
//! their queues and exit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::batch::Pool;
use crate::classify::{Classifier, class_names};
use crate::config::Config;
use crate::encode::Names;
use crate::enrich::Enricher;
use crate::forward::{Dispatcher, start_output};
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::metrics::http::MetricsServer;
use crate::receive::{Workers, bind_inputs, spawn_workers};

/// A running pipeline.
pub struct Pipeline {
    workers: Option<Workers>,
    stages: Vec<JoinHandle<()>>,
    outputs: Vec<JoinHandle<()>>,
    pub metrics: Arc<Metrics>,
    /// (input name, protocol, bound address).
    pub addrs: Vec<(String, &'static str, SocketAddr)>,
    metrics_server: Option<MetricsServer>,
    pub metrics_addr: Option<SocketAddr>,
    pub pool: Arc<Pool>,
}

/// The names encoders and matchers use for `cfg`.
pub fn names_for(cfg: &Config) -> Names {
    Names {
        inputs: cfg.inputs.iter().map(|i| i.name.clone()).collect(),
        classes: class_names(&cfg.classify),
    }
}

impl Pipeline {
    /// Binds, builds and starts everything. Errors name what failed.
    pub fn start(cfg: &Config) -> anyhow::Result<Pipeline> {
        let names = Arc::new(names_for(cfg));
        let metrics = Metrics::new(
            &names.inputs,
            &cfg.outputs
                .iter()
                .map(|o| o.name.clone())
                .collect::<Vec<_>>(),
        );
        let q = cfg.pipeline.queue_batches.max(1);
        // Enough spare batches for every queue to be full.
        let pool = Pool::new(q * 4 + cfg.outputs.len() * 64 + cfg.pipeline.workers * 2 + 16);

        let classifier = Classifier::new(&cfg.classify, &names).map_err(anyhow::Error::msg)?;
        let classify_stats = classifier.stats();
        metrics
            .extra
            .lock()
            .push(Arc::new(move |out: &mut String| classify_stats.render(out)));
        let identity = cfg.identity.enabled.then(|| Identity::new(&cfg.identity));
        let enricher = Enricher::new(&cfg.enrich, &names, identity).map_err(anyhow::Error::msg)?;
        *metrics.identity.lock() = enricher.identity_stats();
        if let Some(id) = enricher.identity_stats() {
            metrics
                .extra
                .lock()
                .push(Arc::new(move |out: &mut String| id.render_extra(out)));
        }

        let timeout = cfg.pipeline.shutdown_timeout.0;
        let mut outputs = Vec::new();
        let mut handles = Vec::new();
        for (i, o) in cfg.outputs.iter().enumerate() {
            let s = start_output(o, i, names.clone(), metrics.clone(), timeout)?;
            handles.push(s.handle);
            outputs.push(s.thread);
        }

        let bound = bind_inputs(cfg)?;
        let addrs = bound.addrs.clone();

        let (to_classify, classify_rx) = crossbeam_channel::bounded(q);
        let (to_enrich, enrich_rx) = crossbeam_channel::bounded(q);
        let (to_forward, forward_rx) = crossbeam_channel::bounded(q);
        let mut stages = Vec::new();
        stages.push(crate::stage::spawn(
            "classify",
            classifier,
            None,
            classify_rx,
            to_enrich,
            metrics.clone(),
        )?);
        stages.push(crate::stage::spawn(
            "enrich",
            enricher,
            None,
            enrich_rx,
            to_forward,
            metrics.clone(),
        )?);
        let d = Dispatcher {
            outputs: handles,
            pool: pool.clone(),
            metrics: metrics.clone(),
        };
        stages.push(
            std::thread::Builder::new()
                .name("forward".into())
                .spawn(move || d.run(forward_rx, None))?,
        );

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
        let workers = spawn_workers(cfg, bound, to_classify, pool.clone(), metrics.clone())?;
        Ok(Pipeline {
            workers: Some(workers),
            stages,
            outputs,
            metrics,
            addrs,
            metrics_server,
            metrics_addr,
            pool,
        })
    }

    /// Stops accepting, drains every queue to the outputs, and returns when
    /// all threads have finished.
    pub fn shutdown(mut self) {
        if let Some(w) = self.workers.take() {
            w.stop_and_join();
        }
        for h in self.stages.drain(..) {
            let _ = h.join();
        }
        for h in self.outputs.drain(..) {
            let _ = h.join();
        }
        if let Some(s) = self.metrics_server.take() {
            s.stop();
        }
    }
}
