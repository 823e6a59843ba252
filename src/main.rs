//! The `bars-receiver` binary: argument parsing, logging and exit codes; everything else is
//! in the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
