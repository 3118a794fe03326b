//! `eindr-edge`: the edge core on a native multi-threaded HTTP server, for operators who run
//! neither Cloudflare nor Spin. Its store is `STORE_URL`: `memory` (one instance) or Redis
//! (any number of instances behind a load balancer, sharing history and rate limits exactly).
//!
//! With `--dev`, missing auth settings get development defaults (a random HS256 secret for
//! this run, issuer `eindr-dev`, audience `eindr-chat`) and a curl and a chat-page link with a
//! freshly signed token are printed.

mod cache;
mod http;
mod metrics;
mod outbound;
mod redis_store;
mod server;
mod store;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use edge_core::auth::{EdgeClaims, Scope};
use edge_core::system::OsRandom;
use edge_core::{EdgeApp, EdgeConfig, Randomness};
use jwt_simple::prelude::*;
use tracing_subscriber::prelude::*;

use crate::http::Limits;
use crate::metrics::{EventCounter, Metrics};
use crate::server::Shared;
use crate::store::{StoreSpec, shared_memory};

#[derive(Parser)]
#[command(about = "eindr-chat edge on a native HTTP server (memory or Redis store)")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "EDGE_ADDR", default_value = "127.0.0.1:8787")]
    addr: String,
    /// Worker threads (0: one per CPU).
    #[arg(long, env = "EDGE_THREADS", default_value_t = 0)]
    threads: usize,
    /// `memory`, `redis://[user:password@]host:port[/db]` (`rediss://` for TLS), or a Redis
    /// Cluster: `redis+cluster://[user:password@]host:port,host:port` (`rediss+cluster://`).
    #[arg(
        long,
        env = "STORE_URL",
        default_value = "memory",
        hide_env_values = true
    )]
    store_url: String,
    /// What acknowledges a turn on Redis: `primary` (the primary has it) or `replicated` (a
    /// replica has it too, by `WAIT 1`; needs replicas).
    #[arg(long, env = "STORE_DURABILITY", value_enum, default_value = "primary")]
    store_durability: redis_store::Durability,
    /// How long a `replicated` write waits for a replica before it is answered anyway
    /// (counted in `eindr_edge_store_unconfirmed_writes_total` and logged).
    #[arg(long, env = "STORE_REPLICATION_TIMEOUT_MS", default_value_t = 250)]
    store_replication_timeout_ms: u64,
    /// Prefix of every Redis key (several deployments can share one Redis).
    #[arg(long, env = "STORE_KEY_PREFIX", default_value = edge_core::redis_store::DEFAULT_KEY_PREFIX)]
    store_key_prefix: String,
    /// Seconds running requests get to finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    shutdown_grace_seconds: u64,
    /// Seconds a client has to send its headers, and again its body.
    #[arg(long, env = "CLIENT_TIMEOUT_SECONDS", default_value_t = 10)]
    client_timeout_seconds: u64,
    /// Serve the load benchmark's baseline, `GET /bench/empty` (an empty 200).
    #[arg(long, env = "EDGE_BENCH_ROUTES", default_value_t = false, action = clap::ArgAction::Set)]
    bench_routes: bool,
    /// Fill missing auth settings with development defaults and print a signed dev token.
    #[arg(long)]
    dev: bool,
    /// Check that the server on `EDGE_ADDR` answers `GET /health` (the image's healthcheck:
    /// it has no shell or curl) and exit 0, or 1 saying why.
    #[arg(long)]
    healthcheck: bool,
    /// Print a 12-hour development token for this user (signed with JWT_HS256_SECRET,
    /// issuer eindr-dev, audience eindr-chat) and exit.
    #[arg(long, value_name = "USER")]
    mint_token: Option<String>,
    /// The minted token's scope (`chat chat:admin` for an operator's token).
    #[arg(
        long,
        value_name = "SCOPE",
        default_value = "chat",
        requires = "mint_token"
    )]
    mint_scope: String,
}

const DEV_ISSUER: &str = "eindr-dev";
const DEV_AUDIENCE: &str = "eindr-chat";

fn main() {
    let args = Args::parse();
    let metrics = Arc::new(Metrics::new());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true),
        )
        .with(EventCounter(metrics.clone()))
        .init();
    if args.healthcheck {
        if let Err(message) = edge_core::system::probe_health(&args.addr) {
            eprintln!("eindr-edge: unhealthy: {message}");
            std::process::exit(1);
        }
        return;
    }
    if let Some(user) = &args.mint_token {
        match std::env::var("JWT_HS256_SECRET")
            .map_err(|e| e.to_string())
            .and_then(|s| dev_token(&s, user, &args.mint_scope))
        {
            Ok(token) => println!("{token}"),
            Err(message) => {
                eprintln!("eindr-edge: JWT_HS256_SECRET: {message}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Err(message) = run(&args, metrics) {
        eprintln!("eindr-edge: {message}");
        std::process::exit(1);
    }
}

fn run(args: &Args, metrics: Arc<Metrics>) -> Result<(), String> {
    let mut dev_secret = None;
    if args.dev
        && std::env::var_os("JWT_HS256_SECRET").is_none()
        && std::env::var_os("JWT_PUBLIC_KEYS").is_none()
    {
        let mut bytes = [0u8; 32];
        OsRandom.fill(&mut bytes);
        dev_secret = Some(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    }
    let lookup = |name: &str| {
        std::env::var(name).ok().or_else(|| match (args.dev, name) {
            (true, "JWT_HS256_SECRET") => dev_secret.clone(),
            (true, "JWT_ISSUER") => Some(DEV_ISSUER.into()),
            (true, "JWT_AUDIENCE") => Some(DEV_AUDIENCE.into()),
            _ => None,
        })
    };
    let config = EdgeConfig::from_lookup(lookup).map_err(|e| e.to_string())?;
    let store = StoreSpec::parse(
        &args.store_url,
        &args.store_key_prefix,
        args.store_durability,
        std::time::Duration::from_millis(args.store_replication_timeout_ms),
    )?;
    let client_timeout = Duration::from_secs(args.client_timeout_seconds.max(1));
    let limits = Limits {
        max_body_bytes: config.limits.max_body_bytes,
        max_header_bytes: 16 * 1024,
        max_headers: 64,
        header_timeout: client_timeout,
        body_timeout: client_timeout,
        bench_routes: args.bench_routes,
    };
    let mode = if config.minimal_mode {
        "minimal"
    } else {
        "full"
    };
    let shared = Arc::new(Shared {
        app: Arc::new(EdgeApp::new(config).map_err(|e| e.to_string())?),
        metrics,
        memory: shared_memory(),
        limits,
        grace: Duration::from_secs(args.shutdown_grace_seconds),
        store: store.clone(),
    });
    let listener =
        std::net::TcpListener::bind(&args.addr).map_err(|e| format!("{}: {e}", args.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(2, usize::from),
        n => n,
    };
    println!(
        "eindr-edge listening on http://{addr} ({mode} mode, {}, {threads} threads)",
        store.describe()
    );
    if let Some(secret) = &dev_secret {
        print_dev_links(&addr.to_string(), secret)?;
    }
    server::serve(shared, listener, threads)
}

fn dev_token(secret: &str, user: &str, scope: &str) -> Result<String, String> {
    let claims = Claims::with_custom_claims(
        EdgeClaims {
            scope: Some(Scope::Text(scope.into())),
        },
        jwt_simple::prelude::Duration::from_hours(12),
    )
    .with_issuer(DEV_ISSUER)
    .with_audience(DEV_AUDIENCE)
    .with_subject(user);
    HS256Key::from_bytes(secret.as_bytes())
        .authenticate(claims)
        .map_err(|e| e.to_string())
}

fn print_dev_links(addr: &str, secret: &str) -> Result<(), String> {
    let token = dev_token(secret, "dev-user", "chat")?;
    println!("development token for user `dev-user` (valid 12 h, signed with this run's secret):");
    println!(
        "  curl -s http://{addr}/api/chat/respond -H 'authorization: Bearer {token}' \\\n    -H 'content-type: application/json' \\\n    -d '{{\"message\":\"Remind me\",\"context\":{{\"intent\":\"create_reminder\",\"processing_result\":{{\"success\":true,\"data\":{{\"title\":\"meeting\",\"time\":\"14:00\"}}}}}}}}'"
    );
    // In the fragment, which browsers never send: the page keeps it in the tab only.
    println!("chat page, signed in as `dev-user`:\n  http://{addr}/#token={token}");
    Ok(())
}
