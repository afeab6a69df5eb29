//! Time as the host sees it. Natively it is the installed [`crate::testing::MockHost`]'s
//! clock (frozen unless the test moves it), or the system clock when none is installed.

use crate::sys;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    sys::now_ms()
}
