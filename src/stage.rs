//! The middle stages' threads: classify and enrich.
//!
//! Each receives batches on a bounded channel, applies its per-record work
//! in place (new values go into the batch arena) and sends the batch on,
//! blocking while the next queue is full. When its input channel closes
//! (shutdown), it has passed on everything and exits, closing its output.

use std::collections::BTreeMap;
use std::thread::JoinHandle;

use bumpalo::Bump;
use crossbeam_channel::{Receiver, Sender};

use crate::batch::Batch;
use crate::metrics::{StageMetrics, record as record_latency};
use crate::record::{PREFETCH_AHEAD, Record, prefetch_ahead};
use std::sync::Arc;

use crate::metrics::Metrics;

/// Per-record work of a stage.
pub trait StageWork: Send + 'static {
    fn apply<'a>(&mut self, bump: &'a Bump, rec: &mut Record<'a>);

    /// Starts loading what `apply` will read of the stage's own state for
    /// `rec`, which comes [`WORK_PREFETCH_AHEAD`] records later. A hint:
    /// no effect on results.
    fn prefetch(&self, _rec: &Record<'_>) {}
}

/// How many records ahead a stage prefetches its own state
/// ([`StageWork::prefetch`]): nearer than [`PREFETCH_AHEAD`], so that the
/// record's own fields, which it reads to know what to fetch, have arrived.
pub const WORK_PREFETCH_AHEAD: usize = PREFETCH_AHEAD / 2;

impl StageWork for crate::classify::Classifier {
    fn apply<'a>(&mut self, bump: &'a Bump, rec: &mut Record<'a>) {
        crate::classify::Classifier::apply(self, bump, rec)
    }
}

impl StageWork for crate::enrich::Enricher {
    fn apply<'a>(&mut self, bump: &'a Bump, rec: &mut Record<'a>) {
        crate::enrich::Enricher::apply(self, bump, rec)
    }

    fn prefetch(&self, rec: &Record<'_>) {
        crate::enrich::Enricher::prefetch(self, rec)
    }
}

/// A change to a stage's work, applied between batches (live reload).
pub type Update<W> = Box<dyn FnOnce(&mut W) + Send>;

/// Where a stage receives its updates.
pub type Swap<W> = Receiver<Update<W>>;

/// Runs `work` over every batch from `rx`, sending each on to `tx`.
/// Between batches, updates from `swap` change the work (reload).
/// With `reorder`, batches are put back in the order the input workers
/// numbered them (they are parsed in parallel and may arrive out of it);
/// it is told the number of the next batch awaited after each release.
pub fn spawn<W: StageWork>(
    name: &'static str,
    mut work: W,
    swap: Option<Swap<W>>,
    rx: Receiver<Batch>,
    tx: Sender<Batch>,
    metrics: Arc<Metrics>,
    reorder: Option<Arc<dyn Fn(u64) + Send + Sync>>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let m: &StageMetrics = metrics.stage(name);
            let hist = m.latency.local();
            let handle = |mut batch: Batch, work: &mut W| -> bool {
                if let Some(s) = &swap {
                    for update in s.try_iter() {
                        update(work);
                    }
                }
                process(work, &mut batch);
                let n = batch.len() as u64;
                m.records.add(n);
                m.batches.inc();
                record_latency(&mut hist.lock(), batch.born().elapsed(), n);
                if tx.send(batch).is_err() {
                    log::error!("stage {name}: next stage is gone");
                    return false;
                }
                true
            };
            let mut next = 0u64;
            let mut held: BTreeMap<u64, Batch> = BTreeMap::new();
            for batch in rx.iter() {
                let Some(released) = &reorder else {
                    if !handle(batch, &mut work) {
                        return;
                    }
                    continue;
                };
                if batch.seq() != next {
                    held.insert(batch.seq(), batch);
                    continue;
                }
                next += 1;
                if !handle(batch, &mut work) {
                    return;
                }
                while let Some(b) = held.remove(&next) {
                    next += 1;
                    if !handle(b, &mut work) {
                        return;
                    }
                }
                released(next);
            }
            // Nothing should be held back at the end; if a number never came,
            // pass on what is here rather than lose it.
            for (_, b) in std::mem::take(&mut held) {
                if !handle(b, &mut work) {
                    return;
                }
            }
        })
}

/// Applies a stage's work to every record of a batch.
pub fn process<W: StageWork + ?Sized>(work: &mut W, batch: &mut Batch) {
    batch.with_dependent_mut(|owner, recs| {
        let list = &mut recs.list;
        for i in 0..list.len() {
            prefetch_ahead(list, i);
            if let Some(next) = list.get(i + WORK_PREFETCH_AHEAD) {
                work.prefetch(next);
            }
            work.apply(&owner.bump, &mut list[i]);
        }
    });
}
