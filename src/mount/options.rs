//! Parsing of fuse-overlayfs compatible `-o` mount options (pure, unit-tested).

/// Parsed mount options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    pub read_only: bool,
    pub allow_other: bool,
    pub debug: bool,
}
