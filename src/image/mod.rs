//! The image builder: declarations and locks in, deterministic OCI/docker archives out.
//!
//! Pure core: `tree` (in-memory rootfs), `layer` (tar), `oci` (JSON + archive),
//! `deb`/`wheel` (unpacking), `synth` (what maintainer scripts would have made).
//! Edges: `resolve_apt`/`resolve_pip` (host resolvers), `fetch` (network + cache).

pub mod build;
pub mod deb;
pub mod decl;
pub mod fetch;
pub mod import;
pub mod layer;
pub mod lock;
pub mod mirrors;
pub mod oci;
pub mod reference;
pub mod resolve_apt;
pub mod resolve_pip;
pub mod synth;
pub mod tree;
pub mod wheel;
