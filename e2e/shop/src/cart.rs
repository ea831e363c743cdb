//! Carts in PostgreSQL.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[derive(Debug, Deserialize)]
pub struct NewItem {
    pub sku: String,
    pub qty: i32,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Item {
    pub sku: String,
    pub qty: i32,
}

impl NewItem {
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.sku.trim().is_empty() || self.sku.len() > 128 {
            return Err(ApiError::BadRequest("sku: 1 to 128 characters".into()));
        }
        if !(1..=1000).contains(&self.qty) {
            return Err(ApiError::BadRequest("qty: 1 to 1000".into()));
        }
        Ok(())
    }
}

/// Idempotent, and safe when several replicas start at once: the advisory
/// lock serialises the CREATEs (which can otherwise race on the catalog).
pub async fn create_schema(client: &mut deadpool_postgres::Object) -> Result<(), ApiError> {
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(4242);
         CREATE TABLE IF NOT EXISTS cart_items (
             user_name text NOT NULL,
             sku text NOT NULL,
             qty integer NOT NULL CHECK (qty > 0),
             PRIMARY KEY (user_name, sku)
         );",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn add(
    client: &deadpool_postgres::Object,
    user: &str,
    item: &NewItem,
) -> Result<(), ApiError> {
    client
        .execute(
            "INSERT INTO cart_items (user_name, sku, qty) VALUES ($1, $2, $3)
             ON CONFLICT (user_name, sku) DO UPDATE SET qty = cart_items.qty + EXCLUDED.qty",
            &[&user, &item.sku, &item.qty],
        )
        .await?;
    Ok(())
}

pub async fn list(client: &deadpool_postgres::Object, user: &str) -> Result<Vec<Item>, ApiError> {
    let rows = client
        .query(
            "SELECT sku, qty FROM cart_items WHERE user_name = $1 ORDER BY sku",
            &[&user],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Item {
            sku: r.get(0),
            qty: r.get(1),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_validated() {
        let ok = NewItem {
            sku: "a".into(),
            qty: 2,
        };
        assert!(ok.validate().is_ok());
        assert!(
            NewItem {
                sku: " ".into(),
                qty: 2
            }
            .validate()
            .is_err()
        );
        assert!(
            NewItem {
                sku: "a".into(),
                qty: 0
            }
            .validate()
            .is_err()
        );
    }
}
