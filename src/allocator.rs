//! How the C allocator keeps memory it has been given back. The operator
//! reads responses of up to one object whole (about 1.5 MB when a tenant
//! pads one with labels), decodes them, keeps a little and frees the rest.
//! glibc's defaults keep such memory: a freed large buffer raises the
//! threshold under which allocations come from the heap (up to 32 MiB), and
//! each worker thread gets its own arena whose freed pages stay resident. A
//! leader then grows with every large object it ever read. So large buffers
//! are mapped and unmapped on their own, free memory at the heap's top goes
//! back at once, and there are few arenas.
//!
//! What is freed in the middle of a heap stays resident all the same (glibc
//! gives back only the heap's top), so a thread hands those pages back every
//! few seconds ([`TRIM_EVERY`]); it walks only the free lists, which a
//! process of a few tens of MiB keeps short. Measured on a private API
//! server among the hostile-input scenario's objects, with backup lookups
//! already one object a page: the leader grew by 11.2 MiB with glibc's
//! defaults, 6.7 to 7.6 MiB with these settings, 3.9 to 4.6 MiB with the
//! trimming too (see the README).
//!
//! A `MALLOC_*_` variable in the environment wins over its setting here.

use std::time::Duration;

/// How often freed pages are handed back.
pub const TRIM_EVERY: Duration = Duration::from_secs(5);

/// glibc's `M_TRIM_THRESHOLD`, `M_MMAP_THRESHOLD` and `M_ARENA_MAX`.
const TRIM_THRESHOLD: i32 = -1;
const MMAP_THRESHOLD: i32 = -3;
const ARENA_MAX: i32 = -8;

/// Each setting: glibc's parameter, the variable that overrides it, the value.
const SETTINGS: [(i32, &str, i32); 3] = [
    (ARENA_MAX, "MALLOC_ARENA_MAX", 2),
    (MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", 128 * 1024),
    (TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", 128 * 1024),
];

/// The settings to make, less those the environment sets itself.
fn wanted(set_in_env: impl Fn(&str) -> bool) -> Vec<(i32, i32)> {
    SETTINGS
        .iter()
        .filter(|(_, var, _)| !set_in_env(var))
        .map(|(param, _, value)| (*param, *value))
        .collect()
}

/// Applies the settings. Called first thing in `main`, before any thread
/// starts. Does nothing where the C library is not glibc.
pub fn tune() {
    let settings = wanted(|var| std::env::var_os(var).is_some());
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (param, value) in settings {
        // SAFETY: mallopt only changes the allocator's parameters; it is
        // called before any other thread exists.
        let done = unsafe { libc::mallopt(param, value) };
        if done != 1 {
            eprintln!("warning: mallopt({param}, {value}) was refused");
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = settings;
}

/// Starts the thread that hands freed pages back to the system.
pub fn start_trimming() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let started = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(TRIM_EVERY);
                // SAFETY: malloc_trim is thread-safe; it only releases
                // pages no allocation uses.
                unsafe { libc::malloc_trim(0) };
            }
        });
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Err(error) = started {
        tracing::warn!(%error, "could not start the thread that returns freed memory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_made_unless_the_environment_makes_it() {
        assert_eq!(
            wanted(|_| false),
            vec![
                (ARENA_MAX, 2),
                (MMAP_THRESHOLD, 131_072),
                (TRIM_THRESHOLD, 131_072)
            ]
        );
        assert_eq!(
            wanted(|var| var == "MALLOC_ARENA_MAX"),
            vec![(MMAP_THRESHOLD, 131_072), (TRIM_THRESHOLD, 131_072)]
        );
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_parameters() {
        assert_eq!(libc::M_ARENA_MAX, ARENA_MAX);
        assert_eq!(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        assert_eq!(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
