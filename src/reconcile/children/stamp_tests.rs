//! The decision over a table of cached children.

use super::*;

const H: u64 = 0xabc;
const OTHER: u64 = 0xdef;

fn stamp(hash: u64, generation: Option<i64>) -> Option<Stamp> {
    Some(Stamp {
        hash,
        generation,
        created: false,
    })
}

fn seen(stamp: Option<Stamp>, generation: Option<i64>, version: &str) -> Seen<'_> {
    Seen {
        stamp,
        labels_match: true,
        generation,
        resource_version: Some(version),
    }
}

fn apply(generation: Option<i64>, convert: bool) -> Write {
    Write::Apply {
        stamp: Stamp {
            hash: H,
            generation,
            created: false,
        },
        convert,
    }
}

#[test]
fn stamps_read_back_as_written() {
    for stamp in [
        Stamp {
            hash: 0,
            generation: None,
            created: false,
        },
        Stamp {
            hash: u64::MAX,
            generation: Some(7),
            created: true,
        },
        Stamp {
            hash: 0x1234,
            generation: Some(1),
            created: false,
        },
    ] {
        assert_eq!(Stamp::parse(&stamp.to_string()), Some(stamp));
    }
    assert_eq!(
        Stamp::parse("00000000000000ab g3").and_then(|s| s.generation),
        Some(3)
    );
    for junk in ["", "xyz", "00ab g", "00ab gx", "00ab nonsense", "00ab  g1"] {
        assert_eq!(Stamp::parse(junk), None, "{junk:?}");
    }
}

/// What the case is, how the kind's writes show, the cached copy, the
/// remembered resourceVersion, and what to send.
type Case<'a> = (&'a str, Version, Option<Seen<'a>>, Option<&'a str>, Write);

const GEN: Version = Version::Generation { annotations: false };
const DEPLOYMENT: Version = Version::Generation { annotations: true };
const NONE: Version = Version::None;

#[test]
fn decides_from_the_cache_alone() {
    let created = Some(Stamp {
        hash: H,
        generation: Some(1),
        created: true,
    });
    let mut unlabelled = seen(stamp(H, Some(3)), Some(3), "50");
    unlabelled.labels_match = false;
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("not cached: create, generation 1",
            GEN, None, None, Write::Create(Stamp { hash: H, generation: Some(1), created: true })),
        ("not cached, no generation",
            NONE, None, None, Write::Create(Stamp { hash: H, generation: None, created: true })),
        ("as last written",
            GEN, Some(seen(stamp(H, Some(3)), Some(3), "50")), None, Write::Skip),
        ("status written since (rv moved, generation not)",
            GEN, Some(seen(stamp(H, Some(3)), Some(3), "99")), Some("50"), Write::Skip),
        ("just created, never applied",
            GEN, Some(seen(created, Some(1), "50")), None, Write::Skip),
        ("spec edited by hand: generation moved",
            GEN, Some(seen(stamp(H, Some(3)), Some(4), "60")), None, apply(Some(4), false)),
        ("created, then edited by hand: convert first",
            GEN, Some(seen(created, Some(2), "60")), None, apply(Some(2), true)),
        ("desired changed: one generation more",
            GEN, Some(seen(stamp(OTHER, Some(3)), Some(3), "50")), None, apply(Some(4), false)),
        ("an own label changed",
            GEN, Some(unlabelled), None, apply(Some(3), false)),
        ("stamp removed by hand",
            GEN, Some(seen(None, Some(3), "50")), None, apply(Some(3), true)),
        ("no generation, after a restart: trusted and remembered",
            NONE, Some(seen(stamp(H, None), None, "50")), None, Write::Skip),
        ("no generation, unchanged since remembered",
            NONE, Some(seen(stamp(H, None), None, "50")), Some("50"), Write::Skip),
        ("no generation, written by someone since",
            NONE, Some(seen(stamp(H, None), None, "51")), Some("50"), apply(None, false)),
        ("no generation, desired changed",
            NONE, Some(seen(stamp(OTHER, None), None, "50")), Some("50"), apply(None, false)),
        ("a stamp from a kind believed to have no generation",
            GEN, Some(seen(stamp(H, None), Some(2), "50")), None, apply(Some(2), false)),
        ("deployment as last written",
            DEPLOYMENT, Some(seen(stamp(H, Some(3)), Some(3), "50")), None, Write::Skip),
        ("deployment scaled by its autoscaler: the new stamp moves it once more",
            DEPLOYMENT, Some(seen(stamp(H, Some(3)), Some(4), "60")), None, apply(Some(5), false)),
        ("deployment with a label removed: the stamp stays, so does the generation",
            DEPLOYMENT, Some(Seen { labels_match: false, ..seen(stamp(H, Some(3)), Some(3), "50") }),
            None, apply(Some(3), false)),
        ("deployment changed: spec and stamp in one write",
            DEPLOYMENT, Some(seen(stamp(OTHER, Some(3)), Some(3), "50")), None, apply(Some(4), false)),
        ("deployment just created, then edited",
            DEPLOYMENT, Some(seen(created, Some(2), "60")), None, apply(Some(3), true)),
        ("autoscaler not cached: created with its spec's hash",
            Version::Spec(77), None, None,
            Write::Create(Stamp { hash: H, generation: Some(77), created: true })),
        ("autoscaler whose status was written",
            Version::Spec(77), Some(seen(stamp(H, Some(77)), Some(77), "99")), Some("50"), Write::Skip),
        ("autoscaler edited by hand",
            Version::Spec(77), Some(seen(stamp(H, Some(77)), Some(78), "99")), None, apply(Some(77), false)),
    ];
    for (case, has_generation, seen, remembered, expected) in cases {
        assert_eq!(
            decide(H, has_generation, seen.as_ref(), remembered),
            expected,
            "{case}"
        );
    }
}

#[test]
fn a_wrong_guess_of_the_generation_is_corrected_once() {
    let sent = Stamp {
        hash: H,
        generation: Some(4),
        created: false,
    };
    assert_eq!(correction(sent, Some(4)), None);
    assert_eq!(
        correction(sent, Some(3)),
        Some(Stamp {
            generation: Some(3),
            ..sent
        })
    );
    assert_eq!(
        correction(sent, None),
        Some(Stamp {
            generation: None,
            ..sent
        })
    );
    let plain = Stamp {
        generation: None,
        ..sent
    };
    assert_eq!(correction(plain, None), None);
}
