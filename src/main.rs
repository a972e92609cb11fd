//! The `rote` binary: parses the command line; without a subcommand it opens the window.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    tune_malloc();
    pin_thread_count();
    let cli = rote::cli::Cli::parse();
    let level = if cli.verbose { "info" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    let result = match cli.command {
        Some(cmd) => rote::cli::run_command(cmd, cli.json).map_err(|e| e.to_string()),
        None => open_window(cli.study),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {}", msg.replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "gui")]
fn open_window(study: Option<std::path::PathBuf>) -> Result<(), String> {
    rote::ui::run_native(study, false).map_err(|e| format!("{e:#}"))
}

#[cfg(not(feature = "gui"))]
fn open_window(_study: Option<std::path::PathBuf>) -> Result<(), String> {
    Err("this build has no GUI (built without the 'gui' feature); see `rote --help` for the CLI".into())
}

/// glibc hands every freed block of 128 KiB or more back to the OS, so candle's per-operation
/// tensors (one 40-face batch is 1.6 MB) are faulted in and zeroed again at every operation
/// (perf: a fifth of MI-FACE's CPU time in page clearing). Blocks up to 64 MiB stay in the heap,
/// which is trimmed only beyond 256 MiB: 56x fewer page faults and 27% less CPU time for
/// `rote bench invert` on the dev machine. Every thread arena keeps up to that much, and glibc
/// makes up to 8 per core: in the window, where each job is a new thread, a 60k-image neighbour
/// search per selection left a freed 47 MB block in arena after arena (peak RSS 1.06 GiB after 34
/// selections, `rote bench frames --no-job`); at most 4 arenas: 0.52 GiB. One arena: a thread
/// arena grows in 64 MiB heaps that glibc unmaps whenever one empties, whatever the trim
/// threshold, so DDPM training on a rayon thread (`diffusion::train_one`) took 200k-550k page
/// faults per 20 steps where the main arena takes 57k (+10% images/s on two cores), and the
/// window's peak RSS went down (741 -> 631 MiB in `rote bench frames --seconds 15`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(
    unsafe_code,
    reason = "mallopt is a plain libc call, made once before any other thread exists"
)]
fn tune_malloc() {
    // SAFETY: called first thing in main, single-threaded; mallopt only sets allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

/// candle's CPU kernels ask for their thread count on every operation, and without
/// `RAYON_NUM_THREADS` that is `num_cpus::get()`, which reads the cgroup files under /sys and
/// /proc each time (5% of a DDIM run's samples, docs/performance.md). Setting the variable once to
/// the machine's parallelism before any thread exists answers it from the environment; a value
/// the user set is kept.
///
/// candle's element-wise CPU ops split themselves over a second pool of threads (its "barrier
/// pool", as many as rayon's) whose threads spin for 25,000 rounds after every op before they
/// sleep, on the same cores as rayon's threads, which run rote's CPU kernels (groups of images,
/// models of a zoo) between those ops. A limit of 2,000 rounds (`CANDLE_BARRIER_POOL_SPIN_LIMIT`,
/// unless the user sets it) lets them sleep before they take a core from rayon's: on two cores
/// DDPM training +8% (28x28) and +14% (8x8), MLP training +12%, the others within noise
/// (docs/performance.md). Running candle's ops on one thread instead (`CANDLE_NUM_THREADS=1`)
/// helped DDPM training as much but cost MLP training and LSTM scoring 15-20%.
#[allow(
    unsafe_code,
    reason = "set_var is unsafe only because of other threads; it runs before any exists"
)]
fn pin_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        // SAFETY: called first thing in main, before any other thread is started.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        // SAFETY: as above.
        unsafe { std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "2000") };
    }
}
