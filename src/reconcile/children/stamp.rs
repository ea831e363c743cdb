//! Whether a child needs writing, decided from the cache alone.
//!
//! Every write carries a stamp annotation: a hash of the desired object and,
//! for kinds with a generation, the generation the write leaves it at. A
//! child is written again only when what the operator owns in it may differ:
//! the desired object changed (another hash), its spec was edited (the
//! generation moved past the stamp's), one of the operator's labels was
//! changed, or (kinds without a generation) its resourceVersion moved since
//! the operator last wrote or checked it. A status write moves neither the
//! generation nor the labels, so it costs nothing; and after a restart the
//! stamps are still there, so nothing is sent.

//! The stamp is the annotation `crate::lean::STAMP`, which the caches keep.

use std::fmt;

/// What the operator last wrote into a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// [`super::memo::hash_of`] the desired object, before the stamp.
    pub hash: u64,
    /// The generation the write left it at, for kinds that have one.
    pub generation: Option<i64>,
    /// Made by a create: its fields are still owned by an Update entry of
    /// the operator's manager, to be turned into an Apply entry before the
    /// first apply (see `created`).
    pub created: bool,
}

impl Stamp {
    /// Reads an annotation's value; `None` when it is not a stamp.
    pub fn parse(text: &str) -> Option<Stamp> {
        let mut parts = text.split(' ');
        let hash = u64::from_str_radix(parts.next()?, 16).ok()?;
        let mut stamp = Stamp {
            hash,
            generation: None,
            created: false,
        };
        for part in parts {
            match part {
                "created" => stamp.created = true,
                g => stamp.generation = Some(g.strip_prefix('g')?.parse().ok()?),
            }
        }
        Some(stamp)
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.hash)?;
        if let Some(generation) = self.generation {
            write!(f, " g{generation}")?;
        }
        if self.created {
            f.write_str(" created")?;
        }
        Ok(())
    }
}

/// How a kind's writes show in its cached copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// Not at all: compared by resourceVersion (Services, Secrets,
    /// ConfigMaps, which nothing but their writers touch).
    None,
    /// In `metadata.generation`, which a change of the spec moves by one per
    /// write, and with `annotations` a change of the annotations too (as
    /// Deployments do, so the stamp itself moves it).
    Generation { annotations: bool },
    /// In a hash of the spec as stored, which a status write leaves alone
    /// (HorizontalPodAutoscalers, which have no generation but a status
    /// their controller keeps writing); the desired spec's hash.
    Spec(i64),
}

/// A child as the cache shows it, as much as the decision reads.
#[derive(Clone, Debug, Default)]
pub struct Seen<'a> {
    /// Its stamp, if it carries a valid one.
    pub stamp: Option<Stamp>,
    /// Whether the operator's labels on it are the desired ones.
    pub labels_match: bool,
    /// What stands for its version (see [`Version`]).
    pub generation: Option<i64>,
    pub resource_version: Option<&'a str>,
}

/// What to send for one child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Nothing: it is what the operator last wrote, and nobody changed what
    /// the operator owns in it.
    Skip,
    /// Create it, stamped so.
    Create(Stamp),
    /// Apply it, stamped so; `convert` first when it may still carry the
    /// create's Update entry.
    Apply { stamp: Stamp, convert: bool },
}

/// Decides from the desired object's hash, how its kind's writes show, the
/// cached copy (`None`: not in the cache) and, for kinds without a version,
/// the resourceVersion the memo holds (`None`: not remembered, e.g. after a
/// restart).
pub fn decide(hash: u64, version: Version, seen: Option<&Seen>, remembered: Option<&str>) -> Write {
    let Some(seen) = seen else {
        return Write::Create(Stamp {
            hash,
            generation: match version {
                Version::None => None,
                Version::Generation { .. } => Some(1),
                Version::Spec(spec) => Some(spec),
            },
            created: true,
        });
    };
    let stamp = seen.stamp;
    let current = stamp.is_some_and(|s| s.hash == hash && s.generation == seen.generation);
    let untouched = seen.generation.is_some()
        || remembered.is_none_or(|version| Some(version) == seen.resource_version);
    if current && seen.labels_match && untouched {
        return Write::Skip;
    }
    // The generation the apply will leave: one more when the desired spec
    // changed; the same when only a label or someone else's edit is undone
    // (most often an autoscaler's count, which the apply leaves alone),
    // unless the kind counts the stamp's own change. A wrong guess costs one
    // more write, of the stamp alone.
    let generation = match (version, seen.generation) {
        (Version::Spec(spec), _) => Some(spec),
        (Version::Generation { annotations }, Some(g)) => {
            let changed = stamp.is_some_and(|s| s.hash != hash);
            let same = Stamp {
                hash,
                generation: Some(g),
                created: false,
            };
            Some(if changed || (annotations && stamp != Some(same)) {
                g + 1
            } else {
                g
            })
        }
        (_, generation) => generation,
    };
    Write::Apply {
        stamp: Stamp {
            hash,
            generation,
            created: false,
        },
        convert: stamp.is_none_or(|s| s.created),
    }
}

/// The stamp to write again when a write left another generation than its
/// stamp says; `None` when the stamp is right.
pub fn correction(sent: Stamp, generation: Option<i64>) -> Option<Stamp> {
    (sent.generation != generation).then_some(Stamp { generation, ..sent })
}

#[cfg(test)]
#[path = "stamp_tests.rs"]
mod tests;
