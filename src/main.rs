//! The `bars-receiver` binary: argument parsing, logging and exit codes; everything else is
//! in the library.

mod cli;

/// jemalloc, with its background threads, returns the pages of freed bodies to the system
/// within seconds of a burst of large messages, busy or idle; glibc's malloc keeps them in
/// per-thread arenas, so the process would stay at its peak. The library leaves the choice
/// of allocator to the program that embeds it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    cli::run()
}
