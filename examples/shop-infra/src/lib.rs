//! The example crate of `docs/getting-started.md`, named `shop_infra` as in the guide (its
//! `README.md` is a link to the guide, so the guide also travels in the packaged crate).
//!
//! Its code (`guide_lib.rs`) is the guide's `src/lib.rs` block, word for word (a unit test
//! compares them), and the guide itself is this crate's documentation, so each of its Rust
//! blocks (the program, the snapshot tests, the command line tool) compiles as a doctest against
//! this crate and the current API: the guide cannot drift. Blocks that would touch the disk or
//! parse the command line are `no_run`. Run with: `cargo test -p shop-infra`.
//!
//! ---
//!
#![doc = include_str!("../README.md")]

// Exactly as the guide prints it (narrower than rustfmt.toml's width), hence no rustfmt.
#[rustfmt::skip]
mod guide_lib;

pub use guide_lib::{define, shop};

#[cfg(test)]
mod tests {
    use konstacks::prelude::*;

    /// The guide's first Rust block: the `src/lib.rs` it tells the reader to write.
    fn guide_lib_block() -> Option<&'static str> {
        let guide = include_str!("../README.md");
        let start = guide.find("```rust\n")? + "```rust\n".len();
        let len = guide[start..].find("```")?;
        Some(&guide[start..start + len])
    }

    #[test]
    fn guide_lib_is_the_guides_lib_block_word_for_word() {
        let Some(block) = guide_lib_block() else {
            panic!("docs/getting-started.md has no ```rust block");
        };
        assert_eq!(
            include_str!("guide_lib.rs"),
            block,
            "examples/shop-infra/src/guide_lib.rs must be the guide's src/lib.rs block, word for word"
        );
    }

    #[test]
    fn the_guides_stack_is_valid() {
        let synthesized = super::shop(Stage::Prod).synth(&[&SimCloud::catalog()]);
        assert!(synthesized.is_ok(), "{:?}", synthesized.err());
    }
}
