//! appstack-shop: the demo app. It keeps nothing in process memory between
//! requests: sessions live in Redis, carts in PostgreSQL, so any replica can
//! serve any request and a replica that dies loses nothing.

mod cart;
mod config;
mod error;
mod migrate;
mod orders;
mod pg_url;
mod redis_url;
mod routes;
mod session;
mod state;
mod tls;
mod worker;

use std::process::ExitCode;

use tracing::{error, info};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // `appstack-shop worker`: the queue consumer, no HTTP server.
    if std::env::args().nth(1).as_deref() == Some("worker") {
        return worker::run().await;
    }
    let config = match config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let state = match state::AppState::new(&config) {
        Ok(s) => s,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match std::env::args().nth(1).as_deref() {
        Some("migrate") => return migrate::run(&state).await,
        Some("tick") => return migrate::tick(&state).await,
        _ => {}
    }
    if let Err(e) = migrate::require(&state).await {
        error!("{e}");
        return ExitCode::FAILURE;
    }
    // Stores may not be up yet: connect in the background, /readyz says 503 meanwhile.
    state.connect_in_background();
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", config.port)).await {
        Ok(l) => l,
        Err(e) => {
            error!("binding port {}: {e}", config.port);
            return ExitCode::FAILURE;
        }
    };
    info!(port = config.port, pod = %config.pod, "serving");
    let app = routes::router(state, config.pod.clone());
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
    {
        error!("server: {e}");
        return ExitCode::FAILURE;
    }
    info!("stopped after finishing in-flight requests");
    ExitCode::SUCCESS
}

/// SIGTERM (the kubelet) or Ctrl-C: stop accepting, finish what is in flight.
pub(crate) async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
    info!("shutting down");
}
