//! Packages a directory with the worker's own packager and prints what it took, as JSON.
//!
//!     package-tree ROOT OUT.zip
//!
//! Used by `make bench` (dev/bench.sh) to compare the packager with Python's zipfile and
//! Info-ZIP on the same trees: `{"seconds":…,"bytes":…,"code_sha256":"…","entries":…}`.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [root, out] = args.as_slice() else {
        eprintln!("usage: package-tree ROOT OUT.zip");
        return ExitCode::from(64);
    };
    let start = Instant::now();
    match auto_lambda_worker::package::build(root, out) {
        Ok(p) => {
            let seconds = start.elapsed().as_secs_f64();
            let json = serde_json::json!({
                "seconds": seconds,
                "bytes": p.size,
                "unzipped_bytes": p.unzipped_bytes,
                "code_sha256": p.code_sha256,
                "entries": p.entries,
            });
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("package-tree: {err}");
            ExitCode::FAILURE
        }
    }
}
