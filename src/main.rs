//! The `simcast` binary: CLI parsing, config loading, logging, then `simcast::run`.

use clap::{Parser, Subcommand};
use simcast::config::{Config, DEFAULT_TOML};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "simcast",
    version,
    about = "Live character simulation broadcast over WebSocket"
)]
struct Cli {
    /// Config file (TOML); keys it omits keep their defaults.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Address to listen on (overrides server.bind).
    #[arg(long)]
    bind: Option<String>,
    /// Simulation seed (overrides sim.seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Number of characters (overrides sim.characters).
    #[arg(long)]
    characters: Option<usize>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print the embedded default configuration.
    PrintConfig,
}

fn load_config(cli: &Cli) -> Result<Config, String> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path),
        None => Config::embedded(),
    }
    .map_err(|e| e.to_string())?;
    if let Some(bind) = &cli.bind {
        config.server.bind = bind.clone();
    }
    if let Some(seed) = cli.seed {
        config.sim.seed = seed;
    }
    if let Some(n) = cli.characters {
        config.sim.characters = n;
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Raises the open-file soft limit to the hard limit: each client is one descriptor,
/// and the soft default (often 1024) would cap the server far below `max_connections`.
#[cfg(unix)]
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                log::warn!("could not raise the open-file limit");
            }
        }
    }
}

#[cfg(not(unix))]
fn raise_fd_limit() {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Cmd::PrintConfig) = cli.command {
        print!("{DEFAULT_TOML}");
        return ExitCode::SUCCESS;
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    raise_fd_limit();
    let config = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("simcast: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match std::net::TcpListener::bind(&config.server.bind) {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot listen on {}: {e}", config.server.bind);
            return ExitCode::from(1);
        }
    };
    let system = actix::System::new();
    let result = system.block_on(async move {
        let running = simcast::run(listener, config).map_err(|e| e.to_string())?;
        log::info!("simcast listening on http://{}", running.addr);
        log::info!("dashboard: {}", running.dashboard_url());
        let handle = running.handle();
        actix::spawn(async move {
            if actix_web::rt::signal::ctrl_c().await.is_ok() {
                log::info!("interrupted; stopping");
                handle.stop(true).await;
            }
        });
        running.server.await.map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}
