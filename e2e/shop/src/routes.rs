//! The HTTP API. Every response names the pod that served it.

use std::time::{Duration, Instant};

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::cart::{self, NewItem};
use crate::error::ApiError;
use crate::session;
use crate::state::AppState;

/// Longest CPU burn one request may ask for.
const MAX_BURN_MS: u64 = 2000;

pub fn router(state: AppState, pod: String) -> Router {
    let served_by = HeaderValue::from_str(&pod).unwrap_or(HeaderValue::from_static("unknown"));
    Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/cart", get(list_cart))
        .route("/cart/items", post(add_item))
        .route("/orders", post(crate::orders::place))
        .route("/orders/{id}", get(crate::orders::show))
        .route("/burn", get(burn))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let served_by = served_by.clone();
            async move {
                let mut resp = next.run(req).await;
                resp.headers_mut().insert("x-served-by", served_by);
                resp
            }
        }))
}

#[derive(Deserialize)]
struct Login {
    user: String,
}

async fn login(
    State(state): State<AppState>,
    Json(body): Json<Login>,
) -> Result<Response, ApiError> {
    let user = body.user.trim();
    if user.is_empty() || user.len() > 64 {
        return Err(ApiError::BadRequest("user: 1 to 64 characters".into()));
    }
    let token = session::create(&state, user).await?;
    Ok(Json(json!({"token": token, "user": user})).into_response())
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)
}

async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let user = session::user(&state, bearer(&headers)?).await?;
    Ok(Json(json!({"user": user})).into_response())
}

async fn add_item(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(item): Json<NewItem>,
) -> Result<Response, ApiError> {
    item.validate()?;
    let user = session::user(&state, bearer(&headers)?).await?;
    let client = state.pg().await?;
    cart::add(&client, &user, &item).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"sku": item.sku, "added": item.qty})),
    )
        .into_response())
}

async fn list_cart(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let user = session::user(&state, bearer(&headers)?).await?;
    let client = state.pg().await?;
    let items = cart::list(&client, &user).await?;
    Ok(Json(json!({"user": user, "items": items})).into_response())
}

#[derive(Deserialize)]
struct Burn {
    ms: Option<u64>,
}

/// Busy-loops on a blocking thread: CPU load for the autoscaling test.
async fn burn(Query(q): Query<Burn>) -> Response {
    let ms = q.ms.unwrap_or(100).min(MAX_BURN_MS);
    let spun = tokio::task::spawn_blocking(move || {
        let until = Instant::now() + Duration::from_millis(ms);
        let mut x: u64 = 0;
        while Instant::now() < until {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        x
    })
    .await;
    match spun {
        Ok(_) => Json(json!({"burned_ms": ms})).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.check().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}
