//! A unit's main process: `masctl supervise SPEC` runs the service's container
//! ([`supervise`]) and tells systemd when it is healthy ([`health`]).

pub mod health;
pub mod supervise;
