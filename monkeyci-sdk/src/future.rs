//! The one boxed future of the sdk: what type-erased async code returns (action job bodies,
//! the seams to the outside world, the scheduler's attempts).
//!
//! It only names a type; nothing here runs or polls a future.

use std::future::Future;
use std::pin::Pin;

/// A boxed, `Send` future borrowing for `'a` (`'static`: owning everything it uses).
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
