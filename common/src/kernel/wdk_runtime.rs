//! The kernel runtime of the WDK mode (Windows target with the `wdk` feature), set up as the
//! windows-drivers-rs sample drivers set it up: `wdk-panic` supplies the panic handler and
//! `wdk-alloc` the global allocator. Everything else the compiler needs comes from the WDK's
//! libraries, which wdk-build links.

// Linked for its `#[panic_handler]` only; nothing is named from it.
extern crate wdk_panic;

use wdk_alloc::WdkAllocator;

/// The global allocator of WDK-mode drivers: wdk-alloc's pool allocator. `common` itself never
/// allocates.
#[global_allocator]
static GLOBAL_ALLOCATOR: WdkAllocator = WdkAllocator;
