//! The values a pipeline is made of: [`Job`](crate::Job)s, [`ContainerJob`](crate::ContainerJob)
//! specs, job errors, the traits that connect `#[job]` functions to them, and the definitions
//! `#[job]`, `#[pipeline]` and `main!` register.
//!
//! Everything `#[job]` and `#[pipeline]` generate ends up as these values, so tests and
//! `#[pipeline]` functions can build the same things without a macro. Nothing here plans or
//! runs a job.
//!
//! This file only lists the modules: users import from the module that defines a name (the
//! crate root and the prelude re-export the public ones).

pub(crate) mod container;
pub(crate) mod env;
pub(crate) mod error;
pub(crate) mod job;
pub(crate) mod output;
pub(crate) mod registry;
