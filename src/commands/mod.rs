//! One module per CLI command.

pub mod ask;
pub mod bench;
pub mod cluster;
pub mod embed;
pub mod eval;
pub mod eval_answers;
pub mod events;
pub mod inspect;
pub mod jobs;
pub mod migrate;
pub mod parse;
pub mod query;
pub mod regression;
pub mod serve;
pub mod switch;
pub mod sync;
