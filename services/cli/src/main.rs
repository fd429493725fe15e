//! `sinter`: the command line of Sinter, one `sinter <noun> <verb>` per task.
#![forbid(unsafe_code)]

/// `print!`, except that a closed standard output (`sinter recs list | head -1`) ends the
/// process quietly, as it would a C program, instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = write!(std::io::stdout().lock(), $($arg)*) {
            $crate::stdout_failed(error);
        }
    }};
}

/// `println!` with [`out!`]'s handling of a closed standard output.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::stdout_failed(error);
        }
    }};
}

mod commands;
mod demo;
mod dev;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Ingest and the bus allocate a few small buffers per reading; mimalloc serves them with
// far less time in the allocator than the system's malloc under many threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turn what machines report into business outcomes.
#[derive(Debug, Parser)]
#[command(name = "sinter", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    noun: Noun,
}

/// What a command acts on.
#[derive(Debug, Subcommand)]
enum Noun {
    /// Run Sinter in one process: the four services, the embedded bus, SQLite, a simulator.
    Dev(Box<dev::DevArgs>),
    /// Work with Solution files.
    #[command(subcommand)]
    Solution(commands::solution::SolutionCommand),
    /// Load generators that print throughput figures.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Write the generated data sets the project carries (demo and test data).
    #[command(subcommand)]
    Sample(commands::sample::SampleCommand),
    /// Send readings from JSON lines to a running Sinter.
    Publish(commands::publish::PublishArgs),
    /// Replay a `timestamp,value` CSV log as one device's readings, moved by whole weeks
    /// to end within the past week (each reading keeps its hour and weekday).
    Replay(commands::replay::ReplayArgs),
    /// Recommendations of a running Sinter: list, watch, show, ack, assign, comment, resolve.
    Recs(commands::recs::RecsArgs),
    /// The asset registry of a running Sinter: import, list.
    Assets(commands::assets::AssetsArgs),
    /// Score the anomaly detector on Numenta Anomaly Benchmark files.
    Nab(commands::nab::NabArgs),
    /// Print a simulated pump fleet's telemetry as JSON lines.
    Simulate(commands::simulate::SimulateArgs),
}

/// Exit statuses shared by every command.
pub(crate) mod exit {
    use std::process::ExitCode;

    /// The command did what was asked, and found nothing wrong.
    pub(crate) const OK: ExitCode = ExitCode::SUCCESS;

    /// The command ran and found a problem in its input, such as an invalid Solution.
    pub(crate) fn problems_found() -> ExitCode {
        ExitCode::from(1)
    }

    /// The command could not run: bad arguments, a file that cannot be read. Clap uses the
    /// same status for usage errors.
    pub(crate) fn cannot_run() -> ExitCode {
        ExitCode::from(2)
    }
}

/// Standard output failed: a reader that went away ends the process with success, any other
/// failure with an error.
fn stdout_failed(error: std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("sinter: cannot write to standard output: {error}");
    std::process::exit(1);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.noun {
        Noun::Dev(args) => args.run(),
        Noun::Solution(command) => command.run(),
        Noun::Bench(command) => command.run(),
        Noun::Sample(command) => command.run(),
        Noun::Simulate(args) => args.run(),
        Noun::Nab(args) => args.run(),
        Noun::Publish(args) => args.run(),
        Noun::Replay(args) => args.run(),
        Noun::Recs(args) => args.run(),
        Noun::Assets(args) => args.run(),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            // A bare I/O error is the command's own output failing (network errors come
            // with context or as a status).
            let closed_stdout = error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
            if closed_stdout {
                // The reader of standard output went away: nothing is wrong.
                return ExitCode::SUCCESS;
            }
            match error.downcast_ref::<tonic::Status>() {
                // A refusal from the service: its code and message are the whole story.
                Some(status) => eprintln!("sinter: {:?}: {}", status.code(), status.message()),
                None => eprintln!("sinter: {error:#}"),
            }
            exit::cannot_run()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
