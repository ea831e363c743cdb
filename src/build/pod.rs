//! Pieces of a store's pod that every engine uses: its port, probes and
//! the mounts of its data and socket volumes.

use k8s_openapi::api::core::v1::{
    ContainerPort, ExecAction, Probe, ResourceRequirements, TCPSocketAction, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Name of the data volume (and the PVC prefix: `data-<stack>-<store>-0`).
pub const DATA: &str = "data";
/// The volume holding the server's unix socket, where the engine has one.
pub const SOCKET: &str = "socket";
/// Where the users init container writes the server's users (see
/// `Engine::users_script`): a memory volume, so that the passwords (hashed
/// where the engine can) never reach a disk, mounted read-only in the
/// store container.
pub const USERS_DIR: &str = "/var/run/appstack/users";
/// The volume (downward API) through which a store's instance reads its
/// own labels, [`labels::STORE_ROLE`](super::labels::STORE_ROLE)
/// among them, in [`PODINFO_DIR`]`/labels`: kept current by the kubelet.
pub const PODINFO: &str = "podinfo";
pub const PODINFO_DIR: &str = "/etc/appstack/pod";
/// The store's one port, named after the store (the Services target it by name).
pub fn port(part: &str, number: i32) -> Option<Vec<ContainerPort>> {
    Some(vec![ContainerPort {
        name: Some(part.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }])
}

/// Ready when `script` (run by the image's sh) succeeds: the store answers.
pub fn ready_when(script: &str) -> Option<Probe> {
    Some(Probe {
        exec: Some(ExecAction {
            command: Some(vec!["sh".into(), "-c".into(), script.into()]),
        }),
        period_seconds: Some(5),
        timeout_seconds: Some(3),
        ..Probe::default()
    })
}

/// Restarted only when the port stays closed for a minute: a store busy
/// recovering (AOF replay, WAL redo) must not be killed for being slow.
pub fn alive_on(number: i32, initial_delay: i32) -> Option<Probe> {
    Some(Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(number),
            ..TCPSocketAction::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(10),
        failure_threshold: Some(6),
        ..Probe::default()
    })
}

/// The data volume, mounted at `path`.
pub fn data_mount(path: &str) -> VolumeMount {
    VolumeMount {
        name: DATA.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    }
}

/// The socket volume, mounted at `dir`.
pub fn socket_mount(dir: &str) -> VolumeMount {
    VolumeMount {
        name: SOCKET.into(),
        mount_path: dir.into(),
        ..VolumeMount::default()
    }
}

/// A helper container's resources (the wait-for-store init containers,
/// Sentinel, the exporter, the WAL copy): a hundredth of a core
/// and `memory` requested, at most `limit` of memory.
pub fn sidecar_resources(memory: &str, limit: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(
            [
                ("cpu".to_string(), Quantity("10m".into())),
                ("memory".to_string(), Quantity(memory.into())),
            ]
            .into(),
        ),
        limits: Some([("memory".to_string(), Quantity(limit.into()))].into()),
        ..ResourceRequirements::default()
    }
}
