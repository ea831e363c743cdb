//! Errors as JSON bodies with a status code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or unknown session token; POST /login first")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} is not reachable yet")]
    Unavailable(&'static str),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("random: {0}")]
    Random(#[from] getrandom::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable(_)
            | ApiError::Redis(_)
            | ApiError::Postgres(_)
            | ApiError::Pool(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}
