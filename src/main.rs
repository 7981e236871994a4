use std::process::ExitCode;

use clap::Parser;

// Parsing frees millions of small strings across threads; glibc's allocator spent about
// half of a 2M-event run consolidating chunks, mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Bad invocations exit 2 (clap's own convention matches ours).
    let cli = groupetl::cli::Cli::parse();
    groupetl::cli::main(cli).into()
}
