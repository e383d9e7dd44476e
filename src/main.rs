//! The `layerfs` binary: everything lives in the library; this only hands over argv.

fn main() {
    std::process::exit(layerfs::cli::main());
}
