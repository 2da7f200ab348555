//! The runtime: the extensions under management and their lifecycle, the controller that decides
//! every enable, disable and config change, the health monitor, the replica sync and the site sync.

pub(crate) mod background;
pub(crate) mod control_error;
pub(crate) mod controller;
pub(crate) mod entity_views;
pub(crate) mod health_book;
pub(crate) mod health_monitor;
pub(crate) mod inspect;
pub(crate) mod lifecycle;
pub(crate) mod outbox_relay;
pub(crate) mod replica_sync;
pub(crate) mod views;
