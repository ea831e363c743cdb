//! Who holds a child's name. The operator writes an object only when it does
//! not exist yet or when this stack is its controller: Server-Side Apply with
//! force would otherwise take over another stack's child, or an object a user
//! made by hand (which would then be deleted along with the stack).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// How an existing object's holder reads in a message, when it is not the
/// stack with `uid`; `None` when that stack controls it.
pub fn foreign_holder(meta: &ObjectMeta, uid: &str) -> Option<String> {
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    match controller {
        Some(r) if r.uid == uid => None,
        Some(r) => Some(format!("belongs to {} {}", r.kind, r.name)),
        None => Some(
            "was not created by AppStack, which never takes over an object it did not create \
             (delete it if nothing needs it)"
                .to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn owned_by(uid: &str, controller: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some("shop-web".into()),
            namespace: Some("ns".into()),
            owner_references: Some(vec![OwnerReference {
                kind: "AppStack".into(),
                name: "other".into(),
                uid: uid.into(),
                controller: Some(controller),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn only_our_controller_reference_makes_a_child_ours() {
        assert_eq!(foreign_holder(&owned_by("ours", true), "ours"), None);
        assert_eq!(
            foreign_holder(&owned_by("theirs", true), "ours").as_deref(),
            Some("belongs to AppStack other")
        );
        // A plain owner reference (not controller) and no owner at all both
        // mean somebody else made it.
        for meta in [owned_by("ours", false), ObjectMeta::default()] {
            let holder = foreign_holder(&meta, "ours").unwrap();
            assert!(holder.contains("not created by AppStack"), "{holder}");
        }
    }
}
