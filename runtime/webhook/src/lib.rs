//! Forge push webhooks: checking that a delivery comes from the forge, and reading a push event
//! into what a build needs.
//!
//! A server receives `POST /webhook/<provider>/…` with headers and a raw body. It calls
//! [`verify()`] with the repository's webhook secret over the **raw body bytes**, then [`parse()`],
//! which gives a [`Hook`]: either the [`Push`]es to build (the ref, the commit, who pushed, the
//! head commit's message, the repository's identity and the changed files) or why the delivery
//! is [`Ignored`] (a ping, an event kind not handled, a deleted ref, `[skip ci]`). The delivery id
//! is on both, so the server can drop a redelivery.
//!
//! Providers ([`Provider`]): GitHub, GitLab, Bitbucket Cloud and Gitea. Forgejo and Codeberg send
//! Gitea's format, with `X-Forgejo-*` headers beside or instead of `X-Gitea-*`; both are read.
//! Each provider's payload lives in its own module, which only maps it onto [`Push`].
//!
//! This crate owns the payload formats, the signature schemes and the rules above. It performs no
//! I/O: no HTTP server, no clock, no database, no network (finding the repository a delivery is
//! for, or listing files a payload leaves out, is the caller's job).
//!
//! ```
//! use http::HeaderMap;
//! use monkeyci_webhook::{Hook, Provider, RefName};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let body = br#"{"ref": "refs/heads/main", "before": "0000000000000000000000000000000000000000",
//!   "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "commits": [], "head_commit": null,
//!   "repository": {"full_name": "octo/hello"}}"#;
//! let mut headers = HeaderMap::new();
//! headers.insert("x-github-event", "push".parse()?);
//! headers.insert("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958".parse()?);
//! let secret = b"It's a Secret to Everybody";
//! let (name, value) = monkeyci_webhook::sign(Provider::GitHub, secret, body);
//! headers.insert(name, value.parse()?);
//!
//! let provider: Provider = "github".parse()?;
//! monkeyci_webhook::verify(provider, secret, &headers, body)?;
//! let Hook::Push(pushes) = monkeyci_webhook::parse(provider, &headers, body)? else {
//!     panic!("a push to a branch is built");
//! };
//! assert_eq!(pushes[0].target, RefName::Branch("main".into()));
//! assert_eq!(pushes[0].commit, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
//! assert_eq!(pushes[0].before, None, "the branch was created");
//! assert_eq!(pushes[0].repository.full_name, "octo/hello");
//! # Ok(())
//! # }
//! ```

#![doc(test(attr(deny(warnings))))]

mod bitbucket;
mod gitea;
mod github;
mod gitlab;
mod headers;
mod hook;
mod parse;
mod payload;
mod provider;
mod verify;

pub use hook::{ChangedFiles, Hook, Ignored, Person, Push, RefName, Repository};
pub use parse::parse;
pub use payload::ParseError;
pub use provider::{Provider, UnknownProvider};
pub use verify::{VerifyError, sign, verify};
