//! Orders: the web component accepts one (POST /orders) by pushing it onto
//! a Redis list, and a worker (`appstack-shop worker`, see worker.rs) takes
//! it off and records who processed it, which GET /orders/{id} shows. The
//! web never processes an order itself: an order shown as processed went
//! through the queue.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ApiError;
use crate::session;
use crate::state::AppState;

/// The list orders wait in; the worker pops from its right end.
pub const QUEUE: &str = "orders:queue";
/// Orders a worker has taken but not yet recorded (a reliable queue).
pub const TAKEN: &str = "orders:taken";
/// Order id -> the worker pod that processed it.
pub const DONE: &str = "orders:done";

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Order {
    pub id: String,
    pub item: String,
}

#[derive(Deserialize)]
pub struct NewOrder {
    item: String,
}

pub async fn place(
    State(state): State<AppState>,
    Json(body): Json<NewOrder>,
) -> Result<Response, ApiError> {
    let item = body.item.trim();
    if item.is_empty() || item.len() > 64 {
        return Err(ApiError::BadRequest("item: 1 to 64 characters".into()));
    }
    let order = Order {
        // Half a session token: unique enough for orders.
        id: session::new_token()?[..32].to_string(),
        item: item.to_string(),
    };
    let payload =
        serde_json::to_string(&order).map_err(|e| ApiError::BadRequest(format!("order: {e}")))?;
    let mut redis = state.redis().await?;
    let _: () = redis.lpush(QUEUE, payload).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": order.id, "status": "queued"})),
    )
        .into_response())
}

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mut redis = state.redis().await?;
    let by: Option<String> = redis.hget(DONE, &id).await?;
    Ok(Json(match by {
        Some(by) => json!({"id": id, "status": "processed", "by": by}),
        None => json!({"id": id, "status": "queued"}),
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_travels_as_json() {
        let order = Order {
            id: "ab12".into(),
            item: "teapot".into(),
        };
        let text = serde_json::to_string(&order).unwrap();
        assert_eq!(text, r#"{"id":"ab12","item":"teapot"}"#);
        assert_eq!(serde_json::from_str::<Order>(&text).unwrap(), order);
    }
}
