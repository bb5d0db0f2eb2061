// wired in after the #24 merge
//! Exports: what masctl hands to another engine.

pub mod ess;
