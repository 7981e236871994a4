use std::process::ExitCode;

use clap::Parser;

// Parsing frees millions of small strings across threads; glibc's allocator spent about
// half of a 2M-event run consolidating chunks, mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (v2's option enum).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Readers free a batch's buffers and allocate the next one's moments later. With the
    // default 10 ms delay mimalloc has often returned those pages to the OS in between, and
    // the kernel faults in and zeroes fresh ones (system time of a 20M-event run went from
    // ~2.3 s to ~1.4 s of ~16 s of CPU). Three seconds also outlast a billion-event run's
    // day (~2.5 s a worker), whose large buffers are freed and allocated again for the next
    // one: page faults 24.1M -> 17.3M and 16.2M, system time 89 -> 60 and 61 s, wall
    // 224 -> 208 and 202 s, peak RSS 6.34 -> 6.38 and 6.58 GiB (ten seconds: 196 s but
    // 7.36 GiB). Freed memory still goes back, three seconds later. mimalloc's own
    // environment variable still decides where it is set.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets an integer option; mimalloc reads options atomically.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 3000) };
    }
    // Threads get 16 MiB stacks instead of 2 MiB (address space; pages are touched only as
    // used): arrow-rs builds a Parquet schema's tree recursively, and a file nested ~500
    // levels deep overflowed a reader thread's stack, aborting the run. Now ~4000 levels.
    // Read by std when it spawns its first thread; still the user's when set.
    if std::env::var_os("RUST_MIN_STACK").is_none() {
        std::env::set_var("RUST_MIN_STACK", (16usize << 20).to_string());
    }
    let cli = match groupetl::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // No command: the cause first, then the help.
            eprintln!("error: a command is required (run, validate or plan)\n");
            eprint!("{}", e.render());
            return ExitCode::from(2);
        }
        Err(e) => {
            // Bad invocations exit 2 (clap's own convention matches ours), with the cause in
            // one line first: clap lists missing arguments on the lines after its own.
            let text = e.render().to_string();
            let (first, rest) = groupetl::cli::one_line_cause(&text);
            eprintln!("{first}");
            eprint!("{rest}");
            return ExitCode::from(2);
        }
    };
    groupetl::cli::main(cli).into()
}
