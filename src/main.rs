//! The `simcast` binary: CLI parsing, config loading, logging, then `simcast::run`.

use clap::{Parser, Subcommand};
use simcast::config::{Config, DEFAULT_TOML};
use std::path::PathBuf;
use std::process::ExitCode;

/// See Cargo.toml: cross-thread alloc/free on the fan-out path is glibc's slow path.
/// (`--features system-alloc` builds with glibc's malloc, for comparison only.)
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Simulation seed (overrides sim.seed). A world restored from the data directory
    /// keeps its own; a warning names the difference (use --fresh to apply it).
    #[arg(long)]
    seed: Option<u64>,
    /// Number of characters (overrides sim.characters). A restored world keeps its own,
    /// with a warning, as for --seed.
    #[arg(long)]
    characters: Option<usize>,
    /// Move the data directory's world aside and start a new one.
    #[arg(long)]
    fresh: bool,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print the embedded default configuration.
    PrintConfig,
    /// Rebuild the world from the data directory's snapshot and journal, up to a tick,
    /// and print its tick and state hash (compare with a live snapshot's `state_hash`).
    Replay {
        /// Stop at this tick (default: the end of the journal).
        #[arg(long)]
        until: Option<u64>,
        /// Data directory (default: persistence.dir from the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run worlds with no server, faster than real time, and write their time series
    /// (one row per tick; the town: clock, characters per state, mean needs; wolf_sheep:
    /// sheep, wolves, grass grown) as CSV. The same arguments give a byte-identical
    /// file; a sweep runs one world per value on every core and adds a `run` column.
    Run {
        /// The model: town or wolf_sheep.
        #[arg(long, default_value = "town")]
        model: String,
        /// World seed (default 42).
        #[arg(long)]
        seed: Option<u64>,
        /// Number of characters (the town only; default 200).
        #[arg(long)]
        characters: Option<usize>,
        /// Ticks to run (one row per tick, tick 0 included).
        #[arg(long)]
        ticks: u64,
        /// Where to write the CSV.
        #[arg(long)]
        out: PathBuf,
        /// Set a parameter: seed=N or one of the model's (town: characters=N;
        /// wolf_sheep: width, initial_sheep, sheep_reproduce, …). Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// One world per value: seed=1..20 (inclusive) or characters=100,200.
        #[arg(long, value_name = "KEY=A..B")]
        sweep: Option<String>,
        /// Threads to spread the runs over (default: every core).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Print live items from a server, reconnecting and resuming by itself.
    Watch {
        /// Server address (http://, https://, ws:// or wss://).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Token (or set SIMCAST_TOKEN).
        #[arg(long, env = "SIMCAST_TOKEN", hide_env_values = true)]
        token: String,
        /// Topics, comma-separated (default: state_change,event_notification).
        #[arg(long, value_delimiter = ',')]
        topics: Vec<String>,
        /// Print each item as raw JSON, one per line.
        #[arg(long)]
        json: bool,
        /// Exit after printing this many items.
        #[arg(long)]
        max_items: Option<u64>,
        /// Also trust the certificates in this PEM file (wss://, e.g. self-signed).
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Send one command and print the reply: pause | resume | step 10 | inspect 42 |
    /// set-state 42 sleeping | schedule TYPE --in 50 [--data JSON] | cancel ID |
    /// spawn [--name N] [--location L] | remove ID | set-speed R | reset [--seed S] |
    /// save | debug-log on|off | snapshot | metrics | audit [N]
    Ctl {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long, env = "SIMCAST_TOKEN", hide_env_values = true)]
        token: String,
        /// Also trust the certificates in this PEM file (wss://, e.g. self-signed).
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        words: Vec<String>,
    },
}

/// Runs a client subcommand on a small tokio runtime.
fn run_client(cmd: Cmd) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("simcast: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        match cmd {
            Cmd::Watch {
                url,
                token,
                topics,
                json,
                max_items,
                ca,
            } => {
                let opts = simcast::cli::WatchOptions {
                    url,
                    token,
                    topics,
                    json,
                    max_items,
                    ca,
                };
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                simcast::cli::watch(&opts, &mut out).await.map(|_| ())
            }
            Cmd::Ctl {
                url,
                token,
                ca,
                words,
            } => {
                let data = simcast::cli::ctl_with_ca(&url, &token, &words, ca.as_deref()).await?;
                let text = serde_json::to_string_pretty(&data).unwrap_or_default();
                println!("{text}");
                Ok(())
            }
            Cmd::PrintConfig | Cmd::Replay { .. } | Cmd::Run { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("simcast: {e}");
            ExitCode::from(1)
        }
    }
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
    config.persistence.fresh = cli.fresh;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Raises the open-file soft limit to the hard limit: each client is one descriptor,
/// and the soft default (often 1024) would cap the server far below `max_connections`.
fn raise_fd_limit() {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        log::warn!("could not raise the open-file limit: {e}");
    }
}

/// The `run` subcommand's flags.
struct RunArgs<'a> {
    model: &'a str,
    seed: Option<u64>,
    characters: Option<usize>,
    ticks: u64,
    out: &'a std::path::Path,
    sets: &'a [String],
    sweep: Option<&'a str>,
    threads: Option<usize>,
}

/// `simcast run`: builds the plan from the flags, runs it, writes the file.
fn experiment(run_args: RunArgs<'_>) -> ExitCode {
    use simcast::experiment::{run, Params, Plan};
    let RunArgs {
        model,
        seed,
        characters,
        ticks,
        out,
        sets,
        sweep,
        threads,
    } = run_args;
    let plan = (|| {
        let mut base = Params::defaults(model)?;
        if let Some(seed) = seed {
            base.set("seed", &seed.to_string())?;
        }
        if let Some(characters) = characters {
            base.set("characters", &characters.to_string())?;
        }
        Plan::from_args(base, ticks, sets, sweep)
    })();
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            eprintln!("simcast run: {e}");
            return ExitCode::from(2);
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads.unwrap_or(cores).min(plan.runs.len()).max(1);
    let started = std::time::Instant::now();
    let csv = match run(&plan, threads, |f| {
        eprintln!("simcast run: {:.0} %", f * 100.0)
    }) {
        Ok(csv) => csv,
        Err(e) => {
            eprintln!("simcast run: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::write(out, csv) {
        eprintln!("simcast run: writing {}: {e}", out.display());
        return ExitCode::from(1);
    }
    let ticks_run = plan.ticks * plan.runs.len() as u64;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "simcast run: {} run(s) of {} ticks in {secs:.3} s ({:.0} ticks/s over {threads} threads) → {}",
        plan.runs.len(),
        plan.ticks,
        ticks_run as f64 / secs.max(1e-9),
        out.display()
    );
    ExitCode::SUCCESS
}

/// `simcast replay`: rebuilds the world offline and prints `{tick, state_hash, ...}`.
fn replay(cli: &Cli, until: Option<u64>, data_dir: Option<PathBuf>) -> ExitCode {
    let dir = match data_dir {
        Some(d) => d,
        None => match load_config(cli) {
            Ok(c) => c.data_dir(),
            Err(e) => {
                eprintln!("simcast: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match simcast::persistence::Store::new(dir.clone()).restore::<simcast::sim::SimState>(until) {
        Ok(Some(r)) => {
            for note in &r.notes {
                log::warn!("{note}");
            }
            let w = &r.state.world;
            let out = serde_json::json!({
                "tick": w.tick(),
                "state_hash": format!("{:016x}", w.state_hash()),
                "seed": w.seed(),
                "characters": w.character_count(),
                "paused": r.state.paused,
                "replayed_entries": r.replayed,
            });
            println!("{out}");
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("simcast: no world in {}", dir.display());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("simcast: {e}");
            ExitCode::from(1)
        }
    }
}

/// SIGHUP re-reads the config file's tokens and replaces the live list; connections
/// already authenticated keep their role. A file that does not parse, or that names no
/// tokens, leaves the current tokens in force.
async fn reload_tokens_on_sighup(tokens: simcast::session::auth::Tokens, path: Option<PathBuf>) {
    #[cfg(unix)]
    {
        use actix_web::rt::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let Some(path) = path.as_ref() else {
                log::warn!("SIGHUP: no --config file to reload tokens from");
                continue;
            };
            match Config::load(path) {
                Ok(c) if !c.auth.tokens.is_empty() => {
                    let n = c.auth.tokens.len();
                    tokens.replace(c.auth.tokens);
                    log::info!("SIGHUP: reloaded {n} tokens from {}", path.display());
                }
                Ok(_) => log::warn!(
                    "SIGHUP: {} names no tokens; keeping the current ones",
                    path.display()
                ),
                Err(e) => log::error!("SIGHUP: tokens not reloaded: {e}"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (tokens, path);
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    wait_for_sigint_or_sigterm().await;
    log::info!("signal received");
}

async fn wait_for_sigint_or_sigterm() {
    #[cfg(unix)]
    {
        use actix_web::rt::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = actix_web::rt::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = actix_web::rt::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = actix_web::rt::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match cli.command {
        Some(Cmd::PrintConfig) => {
            print!("{DEFAULT_TOML}");
            return ExitCode::SUCCESS;
        }
        Some(Cmd::Replay {
            until,
            ref data_dir,
        }) => return replay(&cli, until, data_dir.clone()),
        Some(Cmd::Run {
            ref model,
            seed,
            characters,
            ticks,
            ref out,
            ref sets,
            ref sweep,
            threads,
        }) => {
            return experiment(RunArgs {
                model,
                seed,
                characters,
                ticks,
                out,
                sets,
                sweep: sweep.as_deref(),
                threads,
            })
        }
        Some(cmd) => return run_client(cmd),
        None => {}
    }
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
        let running = simcast::start(listener, config)?;
        let scheme = if running.tls { "https" } else { "http" };
        log::info!("simcast listening on {scheme}://{}", running.addr);
        // Tokens never go to the log: the URL with the token is printed on stdout only,
        // for the person who started the server.
        log::info!(
            "dashboard: http://{}/ (the URL with its token is on stdout)",
            running.addr
        );
        println!("dashboard: {}", running.dashboard_url());
        actix::spawn(reload_tokens_on_sighup(
            running.token_list.clone(),
            cli.config.clone(),
        ));
        running.serve_until(wait_for_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}
