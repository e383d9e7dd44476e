//! Command line: parses argv (fuse-overlayfs compatible mount forms and subcommands).

pub mod container;
pub mod image;

pub fn main() -> i32 {
    0
}
