//! Exports: what masctl hands to another engine.

pub mod ess;
