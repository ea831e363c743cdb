//! The demo app's API (e2e/shop) as a user of it sees it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::http::{Call, Http, Response};

/// A cart as the app returns it, sorted by sku for comparisons.
pub type Cart = Vec<(String, i64)>;

#[derive(Clone)]
pub struct Shop {
    pub http: Http,
    pub addr: SocketAddr,
    /// The Host header to send (through an ingress controller), if not the address.
    pub host: Option<String>,
}

impl Shop {
    pub fn new(http: Http, addr: SocketAddr) -> Self {
        Self {
            http,
            addr,
            host: None,
        }
    }

    /// The shop behind an ingress controller at `addr`, by host name.
    pub fn routed(http: Http, addr: SocketAddr, host: &str) -> Self {
        Self {
            host: Some(host.to_string()),
            ..Self::new(http, addr)
        }
    }

    pub async fn send(&self, call: Call<'_>) -> Result<Response> {
        let call = call.host(self.host.as_deref());
        self.http.send(self.addr, call).await
    }

    pub async fn login(&self, user: &str) -> Result<String> {
        let body = json!({ "user": user });
        let r = self.send(Call::post("/login", &body)).await?;
        if r.status != 200 && r.status != 201 {
            bail!("POST /login as {user}: expected 200, got {}", r.summary());
        }
        r.json()?["token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("POST /login: no token in {}", r.summary()))
    }

    pub async fn me(&self, token: &str) -> Result<Response> {
        self.send(Call::get("/me").bearer(token)).await
    }

    /// GET /me must answer 200 naming `user`; returns the pod that served it.
    pub async fn expect_me(&self, token: &str, user: &str) -> Result<String> {
        let r = self.me(token).await?;
        let seen = r
            .json()
            .ok()
            .and_then(|v| v["user"].as_str().map(str::to_string));
        if r.status != 200 || seen.as_deref() != Some(user) {
            bail!("GET /me: expected 200 for user {user}, got {}", r.summary());
        }
        Ok(r.served_by.unwrap_or_default())
    }

    pub async fn add_item(&self, token: &str, sku: &str, qty: i64) -> Result<()> {
        let body = json!({ "sku": sku, "qty": qty });
        let r = self
            .send(Call::post("/cart/items", &body).bearer(token))
            .await?;
        if !(200..300).contains(&r.status) {
            bail!("POST /cart/items {sku}: expected 201, got {}", r.summary());
        }
        Ok(())
    }

    pub async fn cart(&self, token: &str) -> Result<(Cart, Response)> {
        let r = self.send(Call::get("/cart").bearer(token)).await?;
        if r.status != 200 {
            bail!("GET /cart: expected 200, got {}", r.summary());
        }
        Ok((parse_cart(&r.json()?)?, r))
    }

    pub async fn ready(&self) -> Result<Response> {
        self.send(Call::get("/readyz").timeout(Duration::from_secs(3)))
            .await
    }
}

pub fn parse_cart(value: &Value) -> Result<Cart> {
    let items = value["items"]
        .as_array()
        .context("GET /cart: no items array")?;
    let mut cart: Cart = items
        .iter()
        .map(|i| {
            let sku = i["sku"].as_str().unwrap_or_default().to_string();
            (sku, i["qty"].as_i64().unwrap_or_default())
        })
        .collect();
    cart.sort();
    Ok(cart)
}

/// Logs in as `user` and fills a cart: the state every kill scenario must keep.
pub async fn seed(shop: &Shop, user: &str) -> Result<(String, Cart)> {
    let token = shop.login(user).await?;
    shop.add_item(&token, "cattle-not-pets", 2).await?;
    shop.add_item(&token, "redis-sessions", 1).await?;
    let (cart, _) = shop.cart(&token).await?;
    if cart.is_empty() {
        bail!("GET /cart right after adding two items returned an empty cart");
    }
    Ok((token, cart))
}
