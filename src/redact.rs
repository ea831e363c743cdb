//! The stack's passwords kept out of what the operator quotes. Status
//! conditions and Events quote what store and backup pods said (their last
//! log lines, their termination messages), and a server that refuses its
//! configuration may print a password in them; anyone who may read the
//! AppStack or the namespace's Events would then read it. Every password
//! the operator holds for the stack is replaced by [`REDACTED`] before it
//! is quoted, in each form it takes in the stack's children.

use sha2::{Digest, Sha256};

use crate::build::stores;

/// What a password becomes.
pub const REDACTED: &str = "[redacted]";

/// The shortest end of a password recognised where a message is cut (the
/// kubelet keeps a log's tail, a termination message's head): shorter
/// pieces say next to nothing of the password.
const FRAGMENT: usize = 6;

/// The passwords the operator knows for one stack, in every form they take.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Known {
    /// Longest first, so that a form inside another is not matched first.
    forms: Vec<String>,
}

impl Known {
    pub fn new<'a>(passwords: impl IntoIterator<Item = &'a str>) -> Self {
        let mut forms = Vec::new();
        for p in passwords.into_iter().filter(|p| !p.is_empty()) {
            let encoded = stores::userinfo(p);
            forms.extend([
                p.to_string(),
                // As quoted line by line (a password edited with `echo`
                // ends in a newline).
                p.trim().to_string(),
                // In the Secrets' `url` (and as some clients print it).
                lower_escapes(&encoded),
                encoded,
                // As Redis holds it in its users (`#<hex>`).
                hex::encode(Sha256::digest(p.as_bytes())),
            ]);
            forms.extend(p.lines().map(|l| l.trim().to_string()));
        }
        forms.retain(|f| !f.is_empty());
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Self { forms }
    }

    /// `text` with every known password (and, at its very start or end, a
    /// piece of one that the cut left) replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        if self.forms.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut i = self.cut_head(text);
        if i > 0 {
            out.push_str(REDACTED);
        }
        let end = self.cut_tail(&text[i..]) + i;
        while i < end {
            let rest = &text[i..end];
            if let Some(form) = self.forms.iter().find(|f| rest.starts_with(f.as_str())) {
                out.push_str(REDACTED);
                i += form.len();
            } else if let Some(c) = rest.chars().next() {
                out.push(c);
                i += c.len_utf8();
            }
        }
        if end < text.len() {
            out.push_str(REDACTED);
        }
        out
    }

    /// The length of the longest end of a password `text` starts with.
    fn cut_head(&self, text: &str) -> usize {
        self.forms
            .iter()
            .filter_map(|f| {
                (1..f.len())
                    .filter(|&start| f.is_char_boundary(start) && f.len() - start >= FRAGMENT)
                    .map(|start| &f[start..])
                    .find(|end| text.starts_with(end))
                    .map(str::len)
            })
            .max()
            .unwrap_or(0)
    }

    /// Where the longest beginning of a password that `text` ends with starts
    /// (`text.len()` when there is none).
    fn cut_tail(&self, text: &str) -> usize {
        let longest = self
            .forms
            .iter()
            .filter_map(|f| {
                (FRAGMENT..f.len())
                    .rev()
                    .filter(|&len| f.is_char_boundary(len))
                    .map(|len| &f[..len])
                    .find(|start| text.ends_with(start))
                    .map(str::len)
            })
            .max()
            .unwrap_or(0);
        text.len() - longest
    }
}

/// A percent-encoded string with its escapes in lower case (`%2f`), as
/// some clients print it.
fn lower_escapes(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut escape = 0;
    for c in encoded.chars() {
        if escape > 0 {
            escape -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            escape = if c == '%' { 2 } else { 0 };
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "P@ss:w/rd#1%x";
    const GENERATED: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn known() -> Known {
        Known::new([PASSWORD, GENERATED, "pw\n"])
    }

    #[test]
    fn a_log_line_with_a_password_keeps_everything_but_the_password() {
        let line = format!(
            "*** FATAL CONFIG FILE ERROR (Redis 7.4.1) *** Reading the configuration file, at line 2 >>> 'user app on >{PASSWORD} ~* +@all' Error in user declaration '>{PASSWORD}': Syntax error"
        );
        assert_eq!(
            known().redact(&line),
            "*** FATAL CONFIG FILE ERROR (Redis 7.4.1) *** Reading the configuration file, at line 2 >>> 'user app on >[redacted] ~* +@all' Error in user declaration '>[redacted]': Syntax error"
        );
    }

    #[test]
    fn percent_encoded_and_hashed_forms_are_redacted_too() {
        let k = known();
        let url = "connecting to rediss://app:P%40ss%3Aw%2Frd%231%25x@shop-redis:6379/0 failed";
        assert_eq!(
            k.redact(url),
            "connecting to rediss://app:[redacted]@shop-redis:6379/0 failed"
        );
        assert_eq!(
            k.redact("rediss://app:P%40ss%3aw%2frd%231%25x@h"),
            "rediss://app:[redacted]@h"
        );
        let hashed = format!(
            "user app on #{} ~*",
            hex::encode(Sha256::digest(PASSWORD.as_bytes()))
        );
        assert_eq!(k.redact(&hashed), "user app on #[redacted] ~*");
        // A password ending in a newline, as a log line quotes it.
        assert_eq!(
            k.redact("password pw refused"),
            "password [redacted] refused"
        );
    }

    #[test]
    fn a_password_cut_at_either_end_of_a_message_is_redacted() {
        let k = known();
        // The kubelet keeps a log's tail: the line may start inside it.
        let tail = format!("{} ~* +@all' is invalid", &GENERATED[50..]);
        assert_eq!(k.redact(&tail), "[redacted] ~* +@all' is invalid");
        // A termination message keeps its head.
        let head = format!("refused >{}", &GENERATED[..20]);
        assert_eq!(k.redact(&head), "refused >[redacted]");
        // Too short a piece to say anything is left alone.
        assert_eq!(k.redact("a08 done"), "a08 done");
    }

    #[test]
    fn text_without_a_password_is_unchanged() {
        let text = "Redis refuses the apps' user app of Secret shop-redis (WRONGPASS invalid username-password pair or user is disabled.)";
        assert_eq!(known().redact(text), text);
        assert_eq!(Known::default().redact(text), text);
        assert_eq!(Known::new([""]).redact(text), text);
    }
}
