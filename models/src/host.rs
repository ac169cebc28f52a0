//! What the hosts of a secure run share — the `cipherdm` tool and the benches: allocator
//! tuning, peak memory, byte sizes and per-layer cost tables.

use std::time::Duration;

use cipherdm_kernel::exec::{LayerRecord, merge_records};

/// A byte count in binary units (`KiB`, `MiB`, `GiB`).
///
/// ```
/// assert_eq!(cipherdm_models::host::human_bytes(3 << 20), "3.0 MiB");
/// ```
pub fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// Parses a byte count: a whole number with an optional binary unit `KiB`, `MiB`, `GiB`
/// (also `K`, `M`, `G`), e.g. `8GiB` or `512M`. Refuses zero, fractions, unknown units
/// and counts that overflow.
///
/// ```
/// use cipherdm_models::host::parse_bytes;
/// assert_eq!(parse_bytes("8GiB").unwrap(), 8 << 30);
/// assert_eq!(parse_bytes("512M").unwrap(), 512 << 20);
/// assert!(parse_bytes("8 GB").is_err());
/// assert!(parse_bytes("0").is_err());
/// ```
pub fn parse_bytes(text: &str) -> Result<usize, crate::ModelError> {
    let bad = || {
        crate::ModelError::Config(format!(
            "`{text}` is not a byte count (a positive whole number, optionally with KiB, MiB or GiB)"
        ))
    };
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let shift = match &text[digits.len()..] {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        _ => return Err(bad()),
    };
    let n: usize = digits.parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    n.checked_mul(1 << shift).ok_or_else(bad)
}

/// Peak resident memory of this process (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A per-layer table (summed over all forwards) as text lines: layer, op, shape, ms,
/// bytes sent by this party, rounds.
pub fn layer_table(records: &[LayerRecord]) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<40} {:<16} {:<18} {:>10} {:>12} {:>7}",
        "layer", "op", "shape", "ms", "bytes", "rounds"
    )];
    for r in merge_records(records) {
        lines.push(format!(
            "{:<40} {:<16} {:<18} {:>10.2} {:>12} {:>7}",
            r.name,
            r.op,
            format!("{:?}", r.shape),
            Duration::from_nanos(r.nanos).as_secs_f64() * 1e3,
            r.cost.bytes_total(),
            r.cost.rounds
        ));
    }
    lines
}

/// Keeps freed memory in the process instead of returning it to the OS after every
/// layer. The protocols allocate and drop many vectors of hundreds of kilobytes per
/// layer; glibc's defaults unmap or trim them on free and page-fault them back on the
/// next allocation, about a quarter of a secure forward's time. Peak memory is not
/// raised: the same sizes are reused. Returns whether glibc accepted both settings
/// (always `false` on other platforms, where it does nothing).
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: `mallopt` is glibc's documented, thread-safe setter of allocator
        // tunables; it takes two integers, touches no caller memory, and a rejected value
        // only returns 0. The thresholds are within glibc's limits (mmap threshold at
        // most 32 MiB on 64-bit targets).
        let (a, b) = unsafe {
            (
                mallopt(M_MMAP_THRESHOLD, 32 << 20),
                mallopt(M_TRIM_THRESHOLD, 256 << 20),
            )
        };
        a == 1 && b == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Gives the pages of freed heap blocks back to the system (glibc's `malloc_trim`):
/// [`tune_allocator`] keeps them for speed, which suits the run of one job but lets a
/// long-running process's memory creep when it drops and remakes large buffers (a party
/// daemon relinking to its peers). Returns whether any memory was released (always
/// `false` on other platforms, where it does nothing).
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: `malloc_trim` is glibc's documented, thread-safe call that releases
        // free heap pages; it takes a byte count and touches no caller memory.
        unsafe { malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn freed_memory_can_be_released_and_allocation_still_works() {
        super::tune_allocator();
        let blocks: Vec<Vec<u8>> = (0..8).map(|k| vec![k as u8; 4 << 20]).collect();
        let kept = vec![1u8; 1 << 10];
        drop(blocks);
        let released = super::release_free_memory();
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(
                released,
                "32 MiB freed under the tuned thresholds, none released"
            );
        }
        let again = vec![3u8; 4 << 20];
        assert_eq!(
            again.iter().map(|&b| b as usize).sum::<usize>(),
            3 * (4 << 20)
        );
        assert_eq!(kept[0], 1);
    }

    #[test]
    fn allocator_tuning_is_accepted_and_allocation_still_works() {
        let accepted = super::tune_allocator();
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(accepted, "glibc rejected the thresholds");
        }
        // Large blocks below and above the new mmap threshold, allocated, written, freed.
        for n in [1usize << 16, 1 << 22, 5 << 22] {
            let v = vec![7u64; n];
            assert_eq!(v.iter().copied().map(|x| x as usize).sum::<usize>(), 7 * n);
        }
    }
}
