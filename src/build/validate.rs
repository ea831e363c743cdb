//! The spec's checks that need no child: names, ports, autoscaling,
//! `uses`, and what admission refuses, for stacks stored before a rule.

use kube::ResourceExt;

use super::error::BuildError;
use super::{admission, names, stores};
use crate::api::AppStack;

/// What CEL checks at admission, checked again: objects that bypassed
/// admission (or an older CRD) must still never produce invalid children.
pub(super) fn stack(stack: &AppStack) -> Result<(), BuildError> {
    let spec = &stack.spec;
    if spec.components.is_empty() {
        return Err(BuildError::NoComponents);
    }
    let stack_name = stack.name_any();
    names::check_stack(&stack_name)?;
    let parts = stores::parts();
    for (index, c) in spec.components.iter().enumerate() {
        names::check_component(&stack_name, index, &c.name, &parts)?;
        if spec.components[..index].iter().any(|o| o.name == c.name) {
            return Err(BuildError::ComponentName {
                index,
                message: format!("{:?} is used by another component", c.name),
            });
        }
        let duplicate = c
            .env
            .iter()
            .enumerate()
            .find(|(n, e)| c.env[..*n].iter().any(|o| o.name == e.name));
        if let Some((_, e)) = duplicate {
            return Err(BuildError::DuplicateEnv {
                index,
                name: e.name.clone(),
            });
        }
        if let Some(port) = c.port
            && !(1..=65535).contains(&port)
        {
            return Err(BuildError::Port { index, port });
        }
        if let Some(a) = &c.autoscaling
            && a.min_replicas > a.max_replicas
        {
            return Err(BuildError::Autoscaling {
                index,
                min: a.min_replicas,
                max: a.max_replicas,
            });
        }
        admission::component(index, c)?;
        for engine in stores::ENGINES {
            let kind = engine.kind();
            if !engine.runs(spec) && c.uses.as_ref().is_some_and(|u| u.contains(&kind)) {
                return Err(BuildError::MissingStore {
                    index,
                    store: engine.part(),
                });
            }
        }
    }
    if stores::of(spec).next().is_some() {
        names::check_stack_with_stores(&stack_name)?;
    }
    for engine in stores::of(spec).filter(|e| e.backup(spec).is_some()) {
        if let Some(why) = engine.backup_needs_tls().filter(|_| !spec.tls_enabled()) {
            return Err(BuildError::BackupWithoutTls {
                store: engine.part(),
                why,
            });
        }
    }
    admission::endpoints(spec)?;
    Ok(())
}
