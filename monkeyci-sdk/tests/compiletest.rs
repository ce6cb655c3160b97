//! Compile-fail (UI) tests for every error `#[job]` and `#[pipeline]` can report (the shapes
//! they accept are the modules of `tests/accepted/`: with no pass case here, trybuild only
//! runs `cargo check`, not a build of the sdk's dependencies). Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p monkeyci-sdk --test compiletest` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
