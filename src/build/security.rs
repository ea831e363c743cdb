//! Security contexts: the restricted Pod Security profile by default.

use k8s_openapi::DeepMerge;
use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

/// The uid/gid the official redis and postgres images run their server as.
pub const STORE_UID: i64 = 999;

pub fn container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        run_as_non_root: Some(true),
        seccomp_profile: Some(runtime_default()),
        ..SecurityContext::default()
    }
}

/// For stateless components: non-root, whatever user the image names.
pub fn app_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        seccomp_profile: Some(runtime_default()),
        ..PodSecurityContext::default()
    }
}

/// For stores: their images' own user, and the volume group-owned by it.
pub fn store_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(STORE_UID),
        run_as_group: Some(STORE_UID),
        fs_group: Some(STORE_UID),
        seccomp_profile: Some(runtime_default()),
        ..PodSecurityContext::default()
    }
}

/// The only capability a component may add: the restricted Pod Security
/// profile allows it and nothing else.
pub const ADDABLE_CAPABILITY: &str = "NET_BIND_SERVICE";

const DROP_ALL: &str = "ALL";

/// The component's container: the user's fields merged over the restricted
/// defaults field by field (k8s-openapi's DeepMerge), except that the dropped
/// capabilities are the union of ALL and the user's list: adding
/// NET_BIND_SERVICE must not take `drop: [ALL]` away (a list replaced whole
/// did, and the pod then left the restricted profile). What may be added is
/// checked before building (`admission::component`).
pub fn app_container(user: Option<&SecurityContext>) -> SecurityContext {
    let mut merged = container();
    let Some(user) = user.cloned() else {
        return merged;
    };
    let user_drop = user
        .capabilities
        .as_ref()
        .and_then(|c| c.drop.clone())
        .unwrap_or_default();
    merged.merge_from(user);
    let mut drop = vec![DROP_ALL.to_string()];
    for cap in user_drop {
        if !drop.contains(&cap) {
            drop.push(cap);
        }
    }
    merged
        .capabilities
        .get_or_insert_with(Capabilities::default)
        .drop = Some(drop);
    merged
}

/// The component's pods: the user's fields merged over [`app_pod`].
pub fn app_pod_with(user: Option<&PodSecurityContext>) -> PodSecurityContext {
    let mut merged = app_pod();
    if let Some(user) = user.cloned() {
        merged.merge_from(user);
    }
    merged
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..SeccompProfile::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_settings_replace_defaults_field_by_field() {
        let user = SecurityContext {
            read_only_root_filesystem: Some(true),
            run_as_user: Some(1000),
            ..SecurityContext::default()
        };
        let merged = app_container(Some(&user));
        assert_eq!(merged.read_only_root_filesystem, Some(true));
        assert_eq!(merged.run_as_user, Some(1000));
        // Untouched fields keep the restricted defaults.
        assert_eq!(merged.allow_privilege_escalation, Some(false));
        assert_eq!(merged.run_as_non_root, Some(true));
        assert_eq!(app_container(None), container());

        let pod = app_pod_with(Some(&PodSecurityContext {
            run_as_user: Some(1000),
            fs_group: Some(2000),
            ..PodSecurityContext::default()
        }));
        assert_eq!((pod.run_as_user, pod.fs_group), (Some(1000), Some(2000)));
        assert_eq!(pod.run_as_non_root, Some(true));
        assert_eq!(pod.seccomp_profile, app_pod().seccomp_profile);
    }

    fn caps(add: &[&str], drop: Option<&[&str]>) -> SecurityContext {
        let list = |l: &[&str]| l.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        SecurityContext {
            capabilities: Some(Capabilities {
                add: Some(list(add)),
                drop: drop.map(list),
            }),
            ..SecurityContext::default()
        }
    }

    #[test]
    fn adding_a_capability_keeps_drop_all() {
        let merged = app_container(Some(&caps(&["NET_BIND_SERVICE"], None)));
        let c = merged.capabilities.unwrap();
        assert_eq!(c.add, Some(vec!["NET_BIND_SERVICE".to_string()]));
        assert_eq!(c.drop, Some(vec!["ALL".to_string()]));
        // The rest of the restricted defaults stay too.
        assert_eq!(merged.allow_privilege_escalation, Some(false));
        assert_eq!(merged.seccomp_profile, Some(runtime_default()));
    }

    #[test]
    fn the_users_drop_list_is_merged_never_replaces_all() {
        let merged = app_container(Some(&caps(&[], Some(&["NET_RAW", "ALL", "CHOWN"]))));
        assert_eq!(
            merged.capabilities.unwrap().drop,
            Some(vec!["ALL".into(), "NET_RAW".into(), "CHOWN".into()])
        );
        // An explicit empty list does not take ALL away either.
        let merged = app_container(Some(&caps(&["NET_BIND_SERVICE"], Some(&[]))));
        assert_eq!(merged.capabilities.unwrap().drop, Some(vec!["ALL".into()]));
        // Capabilities without lists at all.
        let merged = app_container(Some(&SecurityContext {
            capabilities: Some(Capabilities::default()),
            ..SecurityContext::default()
        }));
        assert_eq!(merged.capabilities, container().capabilities);
    }

    #[test]
    fn nested_settings_merge_field_by_field() {
        let merged = app_container(Some(&SecurityContext {
            seccomp_profile: Some(SeccompProfile {
                type_: "Localhost".into(),
                localhost_profile: Some("profiles/web.json".into()),
            }),
            ..SecurityContext::default()
        }));
        let seccomp = merged.seccomp_profile.unwrap();
        assert_eq!(
            (seccomp.type_.as_str(), seccomp.localhost_profile.as_deref()),
            ("Localhost", Some("profiles/web.json"))
        );
        assert_eq!(merged.capabilities, container().capabilities);
    }
}
