use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Bad invocations exit 2 (clap's own convention matches ours).
    let cli = groupetl::cli::Cli::parse();
    groupetl::cli::main(cli).into()
}
