//! Catching panics in futures, so one extension's bug never takes the process down.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

/// The text of a panic payload (`panic!("…")` gives `&str` or `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Runs `fut`, turning a panic inside it into `Err(message)`.
///
/// `AssertUnwindSafe` is sound here because after a panic the host drops whatever the future
/// held and only reports the message; it never observes the broken state.
pub(crate) async fn catch<F: Future>(fut: F) -> Result<F::Output, String> {
    AssertUnwindSafe(fut).catch_unwind().await.map_err(|p| panic_message(&*p))
}
