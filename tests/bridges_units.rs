//! The pure modules of issue 20, compiled here until the #24 merge wires them into
//! the crate (then this file goes and their tests run with the unit tests).

#[allow(dead_code)]
#[path = "../src/appservice/double_puppet.rs"]
mod double_puppet;

#[allow(dead_code)]
#[path = "../src/registration_tokens.rs"]
mod registration_tokens;
