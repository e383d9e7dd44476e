//! The `layerfs` binary: everything lives in the library; this sets up logging and hands
//! over argv. `RUST_LOG` controls logging; `-d` turns on request logging for a mount.

#![deny(unsafe_code)]

fn main() {
    let debug = std::env::args().any(|a| a == "-d" || a == "--debug" || a.contains("debug"));
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    if debug {
        b.filter_level(log::LevelFilter::Debug);
    }
    let _ = b.try_init();
    std::process::exit(layerfs::cli::main());
}
