//! The tmux engine: a persistent control-mode client, nonce markers around sourced command
//! files, streaming output cleaning, and input-wait detection.

pub mod clean;
pub mod command;
pub mod control;
pub mod engine;
pub mod inputwait;
pub mod markers;
pub mod shell;
pub mod store;

pub use engine::{Engine, EngineConfig, ExecRequest};
