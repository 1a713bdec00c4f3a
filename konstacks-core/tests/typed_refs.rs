//! Typed references are checked by the compiler: the wrong kind of handle does not compile.

#[test]
fn wrong_reference_kinds_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile_fail/*.rs");
}
