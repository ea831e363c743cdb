//! Security contexts: the restricted Pod Security profile by default.

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

/// The component's container: the user's fields over the restricted defaults.
pub fn app_container(user: Option<&SecurityContext>) -> SecurityContext {
    let d = container();
    let Some(u) = user.cloned() else {
        return d;
    };
    SecurityContext {
        allow_privilege_escalation: u
            .allow_privilege_escalation
            .or(d.allow_privilege_escalation),
        app_armor_profile: u.app_armor_profile.or(d.app_armor_profile),
        capabilities: u.capabilities.or(d.capabilities),
        privileged: u.privileged.or(d.privileged),
        proc_mount: u.proc_mount.or(d.proc_mount),
        read_only_root_filesystem: u.read_only_root_filesystem.or(d.read_only_root_filesystem),
        run_as_group: u.run_as_group.or(d.run_as_group),
        run_as_non_root: u.run_as_non_root.or(d.run_as_non_root),
        run_as_user: u.run_as_user.or(d.run_as_user),
        se_linux_options: u.se_linux_options.or(d.se_linux_options),
        seccomp_profile: u.seccomp_profile.or(d.seccomp_profile),
        windows_options: u.windows_options.or(d.windows_options),
    }
}

/// The component's pods: the user's fields over [`app_pod`].
pub fn app_pod_with(user: Option<&PodSecurityContext>) -> PodSecurityContext {
    let d = app_pod();
    let Some(u) = user.cloned() else {
        return d;
    };
    PodSecurityContext {
        app_armor_profile: u.app_armor_profile.or(d.app_armor_profile),
        fs_group: u.fs_group.or(d.fs_group),
        fs_group_change_policy: u.fs_group_change_policy.or(d.fs_group_change_policy),
        run_as_group: u.run_as_group.or(d.run_as_group),
        run_as_non_root: u.run_as_non_root.or(d.run_as_non_root),
        run_as_user: u.run_as_user.or(d.run_as_user),
        se_linux_change_policy: u.se_linux_change_policy.or(d.se_linux_change_policy),
        se_linux_options: u.se_linux_options.or(d.se_linux_options),
        seccomp_profile: u.seccomp_profile.or(d.seccomp_profile),
        supplemental_groups: u.supplemental_groups.or(d.supplemental_groups),
        supplemental_groups_policy: u
            .supplemental_groups_policy
            .or(d.supplemental_groups_policy),
        sysctls: u.sysctls.or(d.sysctls),
        windows_options: u.windows_options.or(d.windows_options),
    }
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
}
