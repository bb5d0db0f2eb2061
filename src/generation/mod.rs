//! A generation as it lives on the host: where things are under the state root
//! ([`layout`]), the content-addressed store its entries live in ([`store`]), what
//! it records about itself ([`manifest`]), and the numbered links that make one
//! current ([`generations`]). Evaluation (`eval`) fills it; `ops::build` stores it.

pub mod generations;
pub mod layout;
pub mod manifest;
pub mod store;
