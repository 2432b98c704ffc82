//! The tests every server model runs, once per variant of its I/O model, as one macro: each
//! server crate's `tests/conformance.rs` lists its variants and nothing else.

/// Generates, for each `variant: [flags]`, a module of five tests against the server binary
/// `program` started with those flags:
///
/// - `passes_conformance`: every scenario of `loadgen check` ([`assert_conformance`]);
/// - `shuts_down_gracefully`: SIGTERM gives `clients` joined clients `shutting_down` and EOF,
///   and the process exits 0 within 2 s ([`assert_graceful_shutdown`]);
/// - `survives_fd_exhaustion`: with 64 descriptors the server backs off instead of spinning or
///   crashing, and serves again afterwards ([`assert_survives_fd_exhaustion`]);
/// - `spares_a_full_speed_reader_five_times`: the burst scenario, five runs in a row
///   ([`assert_burst_passes_repeatedly`]).
/// - `aborts_with_linger_zero`: with `--linger 0`, a connection the server ends is closed at
///   once, not half-closed and waited for ([`assert_aborts_with_linger_zero`]).
///
/// ```ignore
/// loadgen::model_tests! {
///     program: env!("CARGO_BIN_EXE_chat-epoll"), clients: 5;
///     level: ["--trigger", "level"];
///     edge: ["--trigger", "edge"];
/// }
/// ```
///
/// A server that cannot run everywhere (chat-uring needs io_uring) adds a `guard`: a function
/// `fn(&str) -> bool` that each test calls first with its name, and that returns `false`
/// (after saying why on stderr) to skip the test. It is named from inside the generated modules,
/// so give its full path from the test crate's root:
///
/// ```ignore
/// loadgen::model_tests! {
///     program: env!("CARGO_BIN_EXE_chat-uring"), clients: 5, guard: crate::support::io_uring_usable;
///     default_pool: [];
/// }
/// ```
///
/// [`assert_conformance`]: crate::check::assert_conformance
/// [`assert_graceful_shutdown`]: crate::check::assert_graceful_shutdown
/// [`assert_survives_fd_exhaustion`]: crate::check::assert_survives_fd_exhaustion
/// [`assert_burst_passes_repeatedly`]: crate::check::assert_burst_passes_repeatedly
/// [`assert_aborts_with_linger_zero`]: crate::check::assert_aborts_with_linger_zero
#[macro_export]
macro_rules! model_tests {
    (program: $program:expr, clients: $clients:expr, guard: $guard:expr;
     $($variant:ident: [$($flag:expr),* $(,)?];)+) => {
        $(
            mod $variant {
                use std::path::Path;

                const FLAGS: &[&str] = &[$($flag),*];

                /// Whether the test `name` of this variant may run here (the guard's verdict).
                fn may_run(name: &str) -> bool {
                    ($guard)(&format!("{}::{name}", stringify!($variant)))
                }

                /// Every conformance scenario passes.
                #[test]
                fn passes_conformance() {
                    if may_run("passes_conformance") {
                        $crate::check::assert_conformance(Path::new($program), FLAGS, false);
                    }
                }

                /// SIGTERM: every client gets `shutting_down` then EOF; exit 0 within 2 s.
                #[test]
                fn shuts_down_gracefully() {
                    if may_run("shuts_down_gracefully") {
                        $crate::check::assert_graceful_shutdown(
                            Path::new($program),
                            FLAGS,
                            $clients,
                        );
                    }
                }

                /// Out of file descriptors: no spinning, no crash, and served again afterwards.
                #[test]
                fn survives_fd_exhaustion() {
                    if may_run("survives_fd_exhaustion") {
                        $crate::check::assert_survives_fd_exhaustion(Path::new($program), FLAGS);
                    }
                }

                /// A burst far above `--max-backlog` closes only the member that stopped
                /// reading, five runs in a row.
                #[test]
                fn spares_a_full_speed_reader_five_times() {
                    if may_run("spares_a_full_speed_reader_five_times") {
                        $crate::check::assert_burst_passes_repeatedly(
                            Path::new($program),
                            FLAGS,
                            5,
                        );
                    }
                }

                /// `--linger 0`: a connection the server ends is aborted once its last frames
                /// are written (no FIN, so no `TIME-WAIT`).
                #[test]
                fn aborts_with_linger_zero() {
                    if may_run("aborts_with_linger_zero") {
                        $crate::check::assert_aborts_with_linger_zero(Path::new($program), FLAGS);
                    }
                }
            }
        )+
    };
    (program: $program:expr, clients: $clients:expr; $($variants:tt)+) => {
        $crate::model_tests! {
            program: $program, clients: $clients, guard: |_test: &str| true;
            $($variants)+
        }
    };
}
