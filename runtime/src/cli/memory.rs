//! How the process gives memory back. Hashing a password takes a block of 19 MiB (argon2id's
//! memory), and glibc's allocator, once it has seen blocks that large, raises the size above
//! which it maps them on their own (its "dynamic mmap threshold"), so later blocks come from
//! its heaps and stay there when freed: after a burst of sign-ins the process keeps hundreds
//! of megabytes it no longer uses. A fixed threshold keeps every large block mapped on its own
//! and unmapped when freed.

/// Blocks of this size and larger are mapped on their own and returned when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const LARGE_BLOCK: i32 = 1024 * 1024;

/// Sets a fixed mmap threshold (glibc only; other allocators return memory on their own terms).
pub(super) fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's `mallopt` parameter number of M_MMAP_THRESHOLD (malloc.h).
        const M_MMAP_THRESHOLD: i32 = -3;
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only changes the allocator's tuning; it is called before any thread
        // of the runtime starts, and 1 MiB is a valid threshold.
        let accepted = unsafe { mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK) };
        if accepted != 1 {
            tracing::debug!("the allocator kept its mmap threshold");
        }
    }
}
