//! Refusing bad configuration the same way in both binaries: one line on stderr that names the
//! setting, and exit status 64 (`EX_USAGE`), which the systemd units treat as "do not restart".
//! A start-up failure that may pass by itself (the queue not reachable yet) exits 75
//! (`EX_TEMPFAIL`), which the units restart.

use std::fmt;

/// Exit status for invalid configuration (sysexits.h `EX_USAGE`).
pub const EXIT_CONFIG: i32 = 64;

/// Exit status for a start-up failure that may pass by itself, such as a network outage
/// (sysexits.h `EX_TEMPFAIL`).
pub const EXIT_TEMPFAIL: i32 = 75;

/// Prints `error: {err}` on one line and exits 75: try again later.
pub fn exit_tempfail(err: &dyn fmt::Display) -> ! {
    eprintln!("error: {err} (temporary: exiting 75 so that systemd starts the service again)");
    std::process::exit(EXIT_TEMPFAIL)
}

/// A setting that cannot be used, named as the operator would write it.
#[derive(Debug)]
pub struct ConfigError {
    /// The flag and its environment variable, e.g. `--queue-url / AUTO_LAMBDA_QUEUE_URL`.
    pub setting: String,
    /// What is wrong with it, in plain words.
    pub problem: String,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            problem: problem.into(),
        }
    }

    /// Prints the error on one line and exits 64.
    pub fn exit(&self) -> ! {
        eprintln!("error: {self}");
        std::process::exit(EXIT_CONFIG)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid setting {}: {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Parses command-line flags like `Parser::parse`, but exits 64 instead of clap's 2 on a
/// usage error, so that every kind of bad configuration has the same exit status.
pub fn parse_args<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(parsed) => parsed,
        Err(err) if err.use_stderr() => {
            // clap's message names the flag; keep its first paragraph, folded onto one line.
            let msg = err.render().to_string();
            let first: Vec<&str> = msg
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{} (see --help)", first.join(" "));
            std::process::exit(EXIT_CONFIG)
        }
        Err(err) => err.exit(), // --help and --version
    }
}
