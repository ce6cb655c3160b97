//! The pipeline-wide environment: what `main!(env = [...])` registers ([`PipelineEnv`], with
//! `inventory`), and the one way to read it ([`pipeline_env`]).
//!
//! Plain data: planning merges it into container specs, and `ctx.shell` and `ctx.run` into
//! their commands and containers; nothing here applies it.

/// The environment of every job of the pipeline, from `main!(env = [...])`.
pub struct PipelineEnv {
    /// (name, value) pairs.
    pub vars: &'static [(&'static str, &'static str)],
}

inventory::collect!(PipelineEnv);

/// The pipeline-wide environment registered in this binary (`main!(env = [...])`), later
/// pairs winning.
pub(crate) fn pipeline_env() -> impl Iterator<Item = (&'static str, &'static str)> {
    inventory::iter::<PipelineEnv>.into_iter().flat_map(|env| env.vars.iter().copied())
}
