//! MAS's admin API: the HTTP client ([`api`]) and the user operations on the
//! current generation's MAS ([`users`]), for `masctl users` and `register-user`.

pub mod api;
pub mod users;

pub use api::{User, UserAction};
