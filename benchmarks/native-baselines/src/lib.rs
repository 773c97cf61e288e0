//! Shared driver for the baseline binaries: argument parsing, the file list,
//! a parallel loop over files and the JSON summary.
//!
//! Both binaries take the same arguments so the harness can call them alike:
//!
//! ```text
//! floor   [--threads N] [--list FILE]    (paths on stdin when --list is absent)
//! dicomrs [--threads N] [--list FILE]
//! ```

use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Files handed to a worker at once: large enough that the shared counter is
/// not contended, small enough that threads finish close together.
const CHUNK: usize = 64;

/// Command line of a baseline binary.
pub struct Args {
    pub threads: usize,
    pub paths: Vec<PathBuf>,
}

/// What one file produced: whether it was processed without error, and a
/// small number derived from its content so the work cannot be optimised away.
pub struct Outcome {
    pub ok: bool,
    pub value: u64,
}

/// Parses `--threads N` and `--list FILE`, then reads the file list.
///
/// Exits with a usage message on bad arguments, since these programs are only
/// run by the harness or by hand.
pub fn parse_args(tool: &str) -> Args {
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut list: Option<PathBuf> = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--threads" => {
                threads = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage(tool, "--threads needs a positive integer"));
            }
            "--list" => {
                list = Some(
                    it.next()
                        .map(PathBuf::from)
                        .unwrap_or_else(|| usage(tool, "--list needs a file")),
                );
            }
            "-h" | "--help" => usage(tool, ""),
            other => usage(tool, &format!("unknown argument {other}")),
        }
    }
    let paths = match list {
        Some(file) => read_list(std::fs::File::open(&file).unwrap_or_else(|e| {
            usage(tool, &format!("cannot open {}: {e}", file.display()))
        })),
        None => read_list(io::stdin().lock()),
    };
    Args { threads, paths }
}

fn usage(tool: &str, problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("{tool}: {problem}");
    }
    eprintln!("usage: {tool} [--threads N] [--list FILE]");
    eprintln!("Reads one path per line from FILE (or stdin) and prints a JSON summary.");
    std::process::exit(if problem.is_empty() { 0 } else { 2 });
}

fn read_list(source: impl Read) -> Vec<PathBuf> {
    BufReader::new(source)
        .lines()
        .map_while(Result::ok)
        .filter(|line| !line.trim().is_empty())
        .map(PathBuf::from)
        .collect()
}

/// Runs `work` on every path with `args.threads` threads and prints the summary.
///
/// Only the loop is timed: reading the list and starting the process are the
/// same for every tool and are left out.
pub fn run<F>(tool: &str, args: &Args, work: F)
where
    F: Fn(&PathBuf) -> Outcome + Sync,
{
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let totals: Vec<(usize, u64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..args.threads)
            .map(|_| scope.spawn(|| worker(&args.paths, &next, &work)))
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker panicked")).collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let ok: usize = totals.iter().map(|t| t.0).sum();
    let checksum = totals.iter().fold(0u64, |acc, t| acc.wrapping_add(t.1));
    let files = args.paths.len();
    let per_s = if seconds > 0.0 { files as f64 / seconds } else { 0.0 };
    let hwm = peak_rss_kib().map_or("null".to_string(), |k| k.to_string());
    println!(
        "{{\"tool\": \"{tool}\", \"threads\": {}, \"files\": {files}, \"ok\": {ok}, \
         \"errors\": {}, \"seconds\": {seconds:.6}, \"files_per_s\": {per_s:.1}, \
         \"vm_hwm_kib\": {hwm}, \"checksum\": {checksum}}}",
        args.threads,
        files - ok,
    );
}

/// This process's peak resident memory (VmHWM) in KiB, where Linux reports it.
///
/// The harness cannot use the child's ru_maxrss: Linux carries the parent's
/// peak across fork and exec into it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Takes chunks of the list until it is exhausted; returns (ok count, checksum).
fn worker<F>(paths: &[PathBuf], next: &AtomicUsize, work: &F) -> (usize, u64)
where
    F: Fn(&PathBuf) -> Outcome,
{
    let (mut ok, mut checksum) = (0usize, 0u64);
    loop {
        let begin = next.fetch_add(CHUNK, Ordering::Relaxed);
        if begin >= paths.len() {
            return (ok, checksum);
        }
        for path in &paths[begin..paths.len().min(begin + CHUNK)] {
            let outcome = work(path);
            ok += usize::from(outcome.ok);
            checksum = checksum.wrapping_add(outcome.value);
        }
    }
}
