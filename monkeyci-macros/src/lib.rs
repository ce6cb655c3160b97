//! The `#[job]` and `#[pipeline]` attributes of MonkeyCI pipelines.
//!
//! This crate only parses, validates and generates code. Everything the generated code does is
//! ordinary library code in `monkeyci-sdk` (its hidden `__private` module), reached through
//! absolute paths. Use the attributes through `monkeyci_sdk::prelude`, where they are documented.

mod attr;
mod ctxt;
mod job;
mod pipeline;

use proc_macro::TokenStream;

/// Declares a job. Documented on `monkeyci_sdk::job`.
#[proc_macro_attribute]
pub fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    job::expand(args.into(), item.into()).into()
}

/// Declares a function computing jobs at run time. Documented on `monkeyci_sdk::pipeline`.
#[proc_macro_attribute]
pub fn pipeline(args: TokenStream, item: TokenStream) -> TokenStream {
    pipeline::expand(args.into(), item.into()).into()
}
