//! A pod that runs to completion (a migration's, a scheduled job's), made
//! from the pod template the component builder gives: so every pod setting
//! a component has (wiring, TLS mount, wait-for-store init containers,
//! security, scheduling) reaches these pods the same way, and what serves
//! (ports, probes, the pre-stop pause) is taken out.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::labels;
use super::meta::StackRef;

/// The component's template as a run-to-completion pod of `part`: its
/// labels are `part`'s (not the component's, so that neither the
/// component's Service nor its Deployment selects it), its main container
/// serves nothing, and a failed pod is replaced by the Job, not restarted
/// in place (its log stays readable).
pub fn run_to_completion(
    ctx: &StackRef,
    mut template: PodTemplateSpec,
    main: &str,
    part: &str,
    role: &str,
) -> PodTemplateSpec {
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels = Some(labels::common(&ctx.name, part, role));
    if let Some(spec) = template.spec.as_mut() {
        spec.restart_policy = Some("Never".into());
        for c in spec.containers.iter_mut().filter(|c| c.name == main) {
            c.ports = None;
            c.readiness_probe = None;
            c.liveness_probe = None;
            c.startup_probe = None;
            c.lifecycle = None;
            // What it printed last, in the pod's status when it fails.
            c.termination_message_policy = Some("FallbackToLogsOnError".into());
        }
    }
    template
}
