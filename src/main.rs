//! The `rote` binary: parses the command line; without a subcommand it opens the window.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = rote::cli::Cli::parse();
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
    rote::ui::run_native(study).map_err(|e| format!("{e:#}"))
}

#[cfg(not(feature = "gui"))]
fn open_window(_study: Option<std::path::PathBuf>) -> Result<(), String> {
    Err("this build has no GUI (built without the 'gui' feature); see `rote --help` for the CLI".into())
}
