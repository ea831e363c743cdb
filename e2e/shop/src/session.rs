//! Sessions in Redis: a random token mapped to the user, with a sliding TTL.

use redis::AsyncCommands;

use crate::error::ApiError;
use crate::state::AppState;

/// Seconds a session lives without use.
const TTL: u64 = 3600;

fn key(token: &str) -> String {
    format!("session:{token}")
}

/// 32 bytes from the OS CSPRNG, hex-encoded.
pub fn new_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

pub fn valid_token(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

pub async fn create(state: &AppState, user: &str) -> Result<String, ApiError> {
    let token = new_token()?;
    let mut redis = state.redis().await?;
    let _: () = redis.set_ex(key(&token), user, TTL).await?;
    Ok(token)
}

/// The session's user; refreshes its TTL.
pub async fn user(state: &AppState, token: &str) -> Result<String, ApiError> {
    if !valid_token(token) {
        return Err(ApiError::Unauthorized);
    }
    let mut redis = state.redis().await?;
    let user: Option<String> = redis.get_ex(key(token), redis::Expiry::EX(TTL)).await?;
    user.ok_or(ApiError::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert!(valid_token(&a) && valid_token(&b));
        assert_ne!(a, b);
        assert!(!valid_token("short"));
        assert!(!valid_token(&"g".repeat(64)));
    }
}
