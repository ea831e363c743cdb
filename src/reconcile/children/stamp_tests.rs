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

/// What the case is, whether the kind has a generation, the cached copy,
/// the remembered resourceVersion, and what to send.
type Case<'a> = (&'a str, bool, Option<Seen<'a>>, Option<&'a str>, Write);

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
            true, None, None, Write::Create(Stamp { hash: H, generation: Some(1), created: true })),
        ("not cached, no generation",
            false, None, None, Write::Create(Stamp { hash: H, generation: None, created: true })),
        ("as last written",
            true, Some(seen(stamp(H, Some(3)), Some(3), "50")), None, Write::Skip),
        ("status written since (rv moved, generation not)",
            true, Some(seen(stamp(H, Some(3)), Some(3), "99")), Some("50"), Write::Skip),
        ("just created, never applied",
            true, Some(seen(created, Some(1), "50")), None, Write::Skip),
        ("spec edited by hand: generation moved",
            true, Some(seen(stamp(H, Some(3)), Some(4), "60")), None, apply(Some(4), false)),
        ("created, then edited by hand: convert first",
            true, Some(seen(created, Some(2), "60")), None, apply(Some(2), true)),
        ("desired changed: one generation more",
            true, Some(seen(stamp(OTHER, Some(3)), Some(3), "50")), None, apply(Some(4), false)),
        ("an own label changed",
            true, Some(unlabelled), None, apply(Some(3), false)),
        ("stamp removed by hand",
            true, Some(seen(None, Some(3), "50")), None, apply(Some(3), true)),
        ("no generation, after a restart: trusted and remembered",
            false, Some(seen(stamp(H, None), None, "50")), None, Write::Skip),
        ("no generation, unchanged since remembered",
            false, Some(seen(stamp(H, None), None, "50")), Some("50"), Write::Skip),
        ("no generation, written by someone since",
            false, Some(seen(stamp(H, None), None, "51")), Some("50"), apply(None, false)),
        ("no generation, desired changed",
            false, Some(seen(stamp(OTHER, None), None, "50")), Some("50"), apply(None, false)),
        ("a stamp from a kind believed to have no generation",
            true, Some(seen(stamp(H, None), Some(2), "50")), None, apply(Some(2), false)),
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
