//! sluice: a fast syslog pipeline for a log-management appliance.
//!
//! Stages, in the order a message meets them: [`receive`] (sockets, input
//! workers) → [`frame`] (TCP byte stream → frames) → [`parse`] (frame →
//! [`record::Record`] in a [`batch::Batch`]) → [`classify`] → [`enrich`] →
//! [`forward`] (dispatcher, per-output queues, [`encode`] and sinks).
//! [`pipeline`] wires them; [`config`] checks the TOML that drives them;
//! [`metrics`] counts everything; [`top`] watches it from a terminal and
//! [`notify`] tells systemd how the service is doing. [`archive`] is the
//! embedded, tamper-evident long-term store (an output, plus `sluice
//! archive`).

pub mod archive;
pub mod batch;
pub mod bytes;
pub mod classify;
pub mod cli;
pub mod config;
pub mod encode;
pub mod enrich;
pub mod forward;
pub mod frame;
pub mod harness;
pub mod identity;
pub mod ip_table;
pub mod load;
pub mod logging;
pub mod matcher;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod parse;
pub mod pipeline;
pub mod receive;
pub mod record;
pub mod stage;
pub mod time;
pub mod tls;
pub mod top;
