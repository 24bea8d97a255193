use std::process::ExitCode;

fn main() -> ExitCode {
    return_large_buffers_at_once();
    ferry::cli::main()
}

/// glibc raises its mmap threshold to the size of the largest block freed, so once
/// an upload's part buffers (megabytes each) have been freed, later ones come from
/// per-thread arenas, which keep the memory after the upload: tens of megabytes
/// that the process never gives back. A fixed threshold keeps every large buffer
/// mapped on its own and returned to the system when it is freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_buffers_at_once() {
    // SAFETY: mallopt sets one allocator parameter; it runs before any other thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_buffers_at_once() {}
