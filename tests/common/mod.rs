//! What the builder tests give the builders besides a stack.

use appstack::api::{AppStack, StoreKind};
use appstack::build::tls::CertifiedKey;
use appstack::build::{Inputs, StoreCredentials, stores};

/// Every store's credentials (the apps' with `password(kind)`, the
/// administrator's with `-admin` appended, the backup user's with `-backup`)
/// and TLS placeholders.
pub fn inputs(stack: &AppStack, password: impl Fn(StoreKind) -> &'static str) -> Inputs {
    let mut inputs = Inputs::default();
    for e in stores::of(&stack.spec) {
        let password = password(e.kind());
        let creds = StoreCredentials {
            username: e.user().into(),
            password: password.into(),
        };
        inputs.set(e.kind(), creds);
        let admin = StoreCredentials {
            username: e.admin_user().into(),
            password: format!("{password}-admin"),
        };
        inputs.set_admin(e.kind(), admin);
        if e.backup(&stack.spec).is_some() {
            let backup = StoreCredentials {
                username: "backup".into(),
                password: format!("{password}-backup"),
            };
            inputs.set_backup(e.kind(), backup);
        }
        if e.instances(&stack.spec) > 1 {
            inputs.set_replication(
                e.kind(),
                StoreCredentials {
                    username: "replicator".into(),
                    password: format!("{password}-replication"),
                },
            );
        }
        let monitor = StoreCredentials {
            username: e.exporter().user.into(),
            password: format!("{password}-monitor"),
        };
        inputs.set_monitor(e.kind(), monitor);
        // Builders never read the PEM: placeholders keep the goldens stable.
        inputs.set_server_certificate(
            e.kind(),
            CertifiedKey {
                cert: format!("<{} certificate>", e.part()),
                key: format!("<{} key>", e.part()),
            },
        );
    }
    inputs.set_agent_image(Some("ghcr.io/appstack/appstack-operator:test".into()));
    // The operator's default scrapers: admitted to the exporters' ports.
    inputs.set_metrics_scrapers(appstack::build::metrics::scrapers(None).unwrap());
    inputs.set_ca(CertifiedKey {
        cert: "<CA certificate>".into(),
        key: "<CA key>".into(),
    });
    inputs
}
