//! Child object names: stable, derived from the stack's name only.

use super::error::BuildError;

/// Longest stack name when the stack has a store: `<stack>-postgres` (a
/// StatefulSet) leaves room for the pod ordinal and the controller-revision-hash
/// label (63), and `<stack>-postgres-headless` is a valid Service name.
pub const MAX_STACK_WITH_STORES: usize = 43;
const MAX_NAME: usize = 63;

/// Component names that would give a child the name (and pod selector) of a
/// store's Service, or of a store's backups, for the stores of these parts:
/// the stores' names, then their headless Services', then their backups'
/// (the order of the CRD's rule).
pub fn reserved(parts: &[&str]) -> Vec<String> {
    let stores = parts.iter().map(|p| p.to_string());
    let headless = parts.iter().map(|p| headless(p));
    let backups = parts.iter().map(|p| format!("{p}-backup"));
    stores.chain(headless).chain(backups).collect()
}

pub fn component(stack: &str, component: &str) -> String {
    format!("{stack}-{component}")
}

/// A store's Secret, client Service and StatefulSet: `<stack>-<part>`.
pub fn store(stack: &str, part: &str) -> String {
    format!("{stack}-{part}")
}

/// A store's read-only Service (its replicas): `<stack>-<store>-ro`.
pub fn read_only(base: &str) -> String {
    format!("{base}-ro")
}

pub fn headless(base: &str) -> String {
    format!("{base}-headless")
}

/// A component's name must be a DNS-1123 label, none of the `reserved`
/// names of the stores of `parts`, and `<stack>-<component>` a valid name.
pub(super) fn check_component(
    stack: &str,
    index: usize,
    name: &str,
    parts: &[&str],
) -> Result<(), BuildError> {
    let err = |message: String| BuildError::ComponentName { index, message };
    let valid_label = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid_label {
        return Err(err(format!(
            "{name:?} must be a DNS-1123 label: lower-case letters, digits and '-', starting with a letter"
        )));
    }
    let reserved = reserved(parts);
    if let Some(suffix) = reserved.iter().find(|r| name.ends_with(&format!("-{r}"))) {
        return Err(err(format!(
            "{name:?} must not end in -{suffix}: <stack>-{name} would be the name of another stack's store"
        )));
    }
    if reserved.iter().any(|r| r == name) {
        let services: Vec<String> = parts.iter().map(|p| format!("<stack>-{p}")).collect();
        return Err(err(format!(
            "{name:?} is reserved: the stores' Services are named {} and <stack>-<store>-headless",
            services.join(", ")
        )));
    }
    let full = component(stack, name);
    if full.len() > MAX_NAME {
        return Err(err(format!(
            "{full:?} would be {} characters; stack and component names together must fit in {MAX_NAME}",
            full.len()
        )));
    }
    Ok(())
}

/// The stack's name prefixes Service names, so it must be a DNS-1035 label
/// (an AppStack's own name may also hold '.' or start with a digit).
pub(super) fn check_stack(stack: &str) -> Result<(), BuildError> {
    let valid = stack.starts_with(|c: char| c.is_ascii_lowercase())
        && !stack.ends_with('-')
        && stack
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(BuildError::StackName(format!(
            "{stack:?} must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, no '.'): it prefixes Service names"
        )));
    }
    Ok(())
}

pub(super) fn check_stack_with_stores(stack: &str) -> Result<(), BuildError> {
    if stack.len() > MAX_STACK_WITH_STORES {
        return Err(BuildError::StackName(format!(
            "{stack:?} is {} characters; a stack with a store may have at most {MAX_STACK_WITH_STORES}",
            stack.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable() {
        assert_eq!(component("shop", "web"), "shop-web");
        assert_eq!(store("shop", "redis"), "shop-redis");
        assert_eq!(
            headless(&store("shop", "postgres")),
            "shop-postgres-headless"
        );
    }

    #[test]
    fn the_longest_stack_name_gives_valid_children() {
        let stack = "a".repeat(MAX_STACK_WITH_STORES);
        let longest = store(&stack, "postgres");
        assert!(headless(&longest).len() <= 63);
        // pod `<sts>-0` and label `<sts>-<10-char hash>` must fit in 63.
        assert!(longest.len() + 11 <= 63);
        assert!(check_stack_with_stores(&stack).is_ok());
        let err = check_stack_with_stores(&format!("{stack}a")).unwrap_err();
        assert!(err.to_string().starts_with("metadata.name:"), "{err}");
    }

    const PARTS: [&str; 2] = ["redis", "postgres"];

    #[test]
    fn the_reserved_names_are_the_stores_their_services_and_backups() {
        assert_eq!(
            reserved(&PARTS),
            [
                "redis",
                "postgres",
                "redis-headless",
                "postgres-headless",
                "redis-backup",
                "postgres-backup",
            ]
        );
    }

    #[test]
    fn component_names_are_checked() {
        assert!(check_component("shop", 0, "web", &PARTS).is_ok());
        for bad in ["", "Web", "1web", "web-", "we_b"] {
            let err = check_component("shop", 2, bad, &PARTS).unwrap_err();
            assert!(
                err.to_string().starts_with("spec.components[2].name:"),
                "{err}"
            );
        }
        let long = "c".repeat(60);
        assert!(check_component("shop", 0, &long, &PARTS).is_err());
        for reserved in reserved(&PARTS) {
            let err = check_component("shop", 1, &reserved, &PARTS).unwrap_err();
            assert!(err.to_string().contains("reserved"), "{err}");
            let err = check_component("a", 1, &format!("b-{reserved}"), &PARTS).unwrap_err();
            assert!(err.to_string().contains("another stack's store"), "{err}");
        }
        assert!(check_component("shop", 0, "redisproxy", &PARTS).is_ok());
    }

    #[test]
    fn stack_names_must_be_dns_1035_labels() {
        assert!(check_stack("shop-2").is_ok());
        for bad in ["9shop", "shop.v2", "Shop"] {
            let err = check_stack(bad).unwrap_err();
            assert!(err.to_string().starts_with("metadata.name:"), "{err}");
        }
    }
}
