//! Compile-fail (UI) tests for every error `#[job]` and `#[pipeline]` can report, and pass tests
//! for the shapes they accept. Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p monkeyci-sdk --test compiletest` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
