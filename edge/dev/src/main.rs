//! `edge-dev`: the edge core on a native HTTP server with an in-memory store.
//!
//! With `--dev`, missing auth settings get embedded development defaults (a random HS256
//! secret for this run, issuer `eindr-dev`, audience `eindr-chat`) and a ready-to-paste curl
//! with a freshly signed token is printed.

use std::io::Read;
use std::sync::Arc;

use clap::Parser;
use edge_core::auth::{EdgeClaims, Scope};
use edge_core::system::{OsRandom, SystemClock};
use edge_core::{EdgeApp, EdgeConfig, HttpRequest, MemoryStore, Randomness, Services};
use jwt_simple::prelude::*;

#[derive(Parser)]
#[command(about = "eindr-chat edge on a native dev server (in-memory store)")]
struct Args {
    /// Address to listen on (loopback by default).
    #[arg(long, env = "EDGE_ADDR", default_value = "127.0.0.1:8787")]
    addr: String,
    /// Worker threads.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Fill missing auth settings with development defaults and print a signed dev token.
    #[arg(long)]
    dev: bool,
    /// Print a 12-hour development token for this user (signed with JWT_HS256_SECRET,
    /// issuer eindr-dev, audience eindr-chat) and exit.
    #[arg(long, value_name = "USER")]
    mint_token: Option<String>,
}

const DEV_ISSUER: &str = "eindr-dev";
const DEV_AUDIENCE: &str = "eindr-chat";

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(true)
        .init();
    if let Some(user) = &args.mint_token {
        match std::env::var("JWT_HS256_SECRET")
            .map_err(|e| e.to_string())
            .and_then(|s| dev_token(&s, user))
        {
            Ok(token) => println!("{token}"),
            Err(message) => {
                eprintln!("edge-dev: JWT_HS256_SECRET: {message}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Err(message) = run(&args) {
        eprintln!("edge-dev: {message}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
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
    let max_body = config.limits.max_body_bytes;
    let app = Arc::new(EdgeApp::new(config).map_err(|e| e.to_string())?);
    let store = Arc::new(MemoryStore::new());
    let server = Arc::new(tiny_http::Server::http(&args.addr).map_err(|e| e.to_string())?);
    let addr = server
        .server_addr()
        .to_ip()
        .map_or(args.addr.clone(), |a| a.to_string());
    println!("edge-dev listening on http://{addr} (minimal mode, in-memory store)");
    if let Some(secret) = &dev_secret {
        print_dev_curl(&addr, secret)?;
    }
    let workers: Vec<_> = (0..args.threads.max(1))
        .map(|_| {
            let (server, app, store) = (server.clone(), app.clone(), store.clone());
            std::thread::spawn(move || serve(&server, &app, &store, max_body))
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

fn dev_token(secret: &str, user: &str) -> Result<String, String> {
    let claims = Claims::with_custom_claims(
        EdgeClaims {
            scope: Some(Scope::Text("chat".into())),
        },
        Duration::from_hours(12),
    )
    .with_issuer(DEV_ISSUER)
    .with_audience(DEV_AUDIENCE)
    .with_subject(user);
    HS256Key::from_bytes(secret.as_bytes())
        .authenticate(claims)
        .map_err(|e| e.to_string())
}

fn print_dev_curl(addr: &str, secret: &str) -> Result<(), String> {
    let token = dev_token(secret, "dev-user")?;
    println!("development token for user `dev-user` (valid 12 h, signed with this run's secret):");
    println!(
        "  curl -s http://{addr}/api/chat/respond -H 'authorization: Bearer {token}' \\\n    -H 'content-type: application/json' \\\n    -d '{{\"message\":\"Remind me\",\"context\":{{\"intent\":\"create_reminder\",\"processing_result\":{{\"success\":true,\"data\":{{\"title\":\"meeting\",\"time\":\"14:00\"}}}}}}}}'"
    );
    // In the fragment, which browsers never send: the page keeps it in the tab only.
    println!("chat page, signed in as `dev-user`:\n  http://{addr}/#token={token}");
    Ok(())
}

fn serve(server: &tiny_http::Server, app: &EdgeApp, store: &MemoryStore, max_body: usize) {
    let services = Services {
        store,
        clock: &SystemClock,
        random: &OsRandom,
        // The dev server drives the core with pollster: no outbound HTTP, so full mode
        // answers with the minimal fallback here.
        outbound: &edge_core::Offline,
    };
    while let Ok(mut request) = server.recv() {
        let mut body = Vec::new();
        // Read one byte past the limit so the core can answer 413 without buffering more.
        let _ = request
            .as_reader()
            .take(max_body as u64 + 1)
            .read_to_end(&mut body);
        let core_request = HttpRequest {
            method: request.method().as_str().to_owned(),
            path: request.url().to_owned(),
            headers: request
                .headers()
                .iter()
                .map(|h| {
                    (
                        h.field.as_str().as_str().to_owned(),
                        h.value.as_str().to_owned(),
                    )
                })
                .collect(),
            body,
            client_addr: request.remote_addr().map(|a| a.ip().to_string()),
        };
        let response = pollster::block_on(app.handle(&core_request, &services));
        let mut reply =
            tiny_http::Response::from_data(response.body).with_status_code(response.status);
        for (name, value) in &response.headers {
            if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                reply.add_header(header);
            }
        }
        if let Err(error) = request.respond(reply) {
            tracing::debug!(%error, "client went away");
        }
    }
}
