//! Containers that run (issue 13): `layerfs run/start/stop/restart/kill/exec/ps/logs/wait/
//! rm/container prune`, through real runc, on layerfs's own FUSE mount as the rootfs.
//!
//! Every scenario runs as root (`::root`) and as the unprivileged `layerfs-test` user with
//! a store it owns and XDG_RUNTIME_DIR unset (`::user`); the lifecycle scenarios also run
//! with XDG_RUNTIME_DIR set to a dir that user owns (`::user_xdg`). The image is built in
//! code from the host's static busybox (`image`). Each scenario skips with a printed reason
//! without root, runc, a static `/bin/busybox` (Debian `busybox-static`), /dev/fuse, or, in
//! the user modes, subordinate ids and unprivileged user namespaces.
//!
//! Every command has a deadline and every wait a bound (`harness`); the teardown removes
//! every container of the store (`rm -f`), kills any process left and unmounts, also when
//! the test failed.

mod harness;
mod image;

/// `#[test]`s `NAME::root` and `NAME::user` (and `NAME::user_xdg` with `xdg`) running the
/// scenario `fn NAME(&Ctx)` of the enclosing module.
macro_rules! modes {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                use super::super::harness::{case, Mode};
                #[test]
                fn root() {
                    case(stringify!($name), Mode::Root, super::$name)
                }
                #[test]
                fn user() {
                    case(stringify!($name), Mode::User { xdg: false }, super::$name)
                }
            }
        )+
    };
    (xdg: $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                use super::super::harness::{case, Mode};
                #[test]
                fn root() {
                    case(stringify!($name), Mode::Root, super::$name)
                }
                #[test]
                fn user() {
                    case(stringify!($name), Mode::User { xdg: false }, super::$name)
                }
                #[test]
                fn user_xdg() {
                    case(stringify!($name), Mode::User { xdg: true }, super::$name)
                }
            }
        )+
    };
}

mod basics;
mod crash;
mod exec;
mod io;
mod lifecycle;
mod ps;
