//! Attribute keys and single-assignment values shared by `#[job]` and `#[pipeline]`.

use std::fmt;

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::ctxt::Ctxt;

/// The name of an attribute argument.
#[derive(Clone, Copy)]
pub(crate) struct Symbol(pub(crate) &'static str);

pub(crate) const DEPENDS_ON: Symbol = Symbol("depends_on");
pub(crate) const WHEN: Symbol = Symbol("when");
pub(crate) const ID: Symbol = Symbol("id");
pub(crate) const BLOCKED: Symbol = Symbol("blocked");
pub(crate) const TIMEOUT: Symbol = Symbol("timeout");
pub(crate) const RETRIES: Symbol = Symbol("retries");
pub(crate) const IDEMPOTENT: Symbol = Symbol("idempotent");
pub(crate) const ALLOW_FAILURE: Symbol = Symbol("allow_failure");
pub(crate) const RUNS: Symbol = Symbol("runs");
pub(crate) const OUTPUT: Symbol = Symbol("output");

impl PartialEq<Symbol> for syn::Ident {
    fn eq(&self, word: &Symbol) -> bool {
        self == word.0
    }
}

impl PartialEq<Symbol> for syn::Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A value that may be set at most once; a second assignment is reported at its key.
pub(crate) struct Attr<'c, T> {
    cx: &'c Ctxt,
    name: Symbol,
    tokens: TokenStream,
    value: Option<T>,
}

impl<'c, T> Attr<'c, T> {
    pub(crate) fn none(cx: &'c Ctxt, name: Symbol) -> Self {
        Attr { cx, name, tokens: TokenStream::new(), value: None }
    }

    pub(crate) fn set<A: ToTokens>(&mut self, key: A, value: T) {
        let tokens = key.into_token_stream();
        if self.value.is_some() {
            self.cx.error_spanned_by(tokens, format!("`{}` set more than once", self.name));
        } else {
            self.tokens = tokens;
            self.value = Some(value);
        }
    }

    pub(crate) fn get(self) -> Option<T> {
        self.value
    }
}
