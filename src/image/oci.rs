//! Canonical image JSON (config, OCI manifest and index, Docker `manifest.json`) and
//! the one archive that holds both the OCI layout and the docker-archive view, so it
//! loads on Docker 20.10 (graphdriver) as well as on the containerd store.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use tar::{EntryType, Header};

use super::layer::{Layer, sha256_hex};
use super::tree::MTIME;

pub const CREATED: &str = "1970-01-01T00:00:01Z";
const LAYER_MEDIA: &str = "application/vnd.oci.image.layer.v1.tar";

/// What a declaration says about how the image runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunConfig {
    pub user: String,
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub workdir: String,
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigSection<'a> {
    user: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    exposed_ports: BTreeMap<&'a str, Empty>,
    env: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    entrypoint: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    cmd: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    volumes: BTreeMap<&'a str, Empty>,
    working_dir: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_signal: Option<&'a str>,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    typ: &'a str,
    diff_ids: Vec<String>,
}

#[derive(Serialize)]
struct History<'a> {
    created: &'a str,
    created_by: &'a str,
    comment: &'a str,
}

#[derive(Serialize)]
struct ImageConfig<'a> {
    created: &'a str,
    architecture: &'a str,
    os: &'a str,
    config: ConfigSection<'a>,
    rootfs: RootFs<'a>,
    history: Vec<History<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'a str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'a str, String>,
}

#[derive(Serialize)]
struct Platform<'a> {
    architecture: &'a str,
    os: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest<'a> {
    config: String,
    repo_tags: Vec<&'a str>,
    layers: Vec<String>,
}

/// Each layer with a line saying where it came from (kept in the image history).
pub struct LayerWithOrigin<'a> {
    pub layer: &'a Layer,
    pub comment: String,
}

/// The metadata blobs of an image; `config_digest` is the image ID on the classic store.
pub struct ImageJson {
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
}

pub fn image_json(run: &RunConfig, layers: &[LayerWithOrigin]) -> Result<ImageJson> {
    let diff_ids: Vec<String> = layers.iter().map(|l| format!("sha256:{}", l.layer.digest)).collect();
    let cfg = ImageConfig {
        created: CREATED,
        architecture: "amd64",
        os: "linux",
        config: ConfigSection {
            user: &run.user,
            exposed_ports: run.exposed_ports.iter().map(|p| (p.as_str(), Empty {})).collect(),
            env: &run.env,
            entrypoint: &run.entrypoint,
            cmd: &run.cmd,
            volumes: run.volumes.iter().map(|v| (v.as_str(), Empty {})).collect(),
            working_dir: &run.workdir,
            labels: &run.labels,
            stop_signal: run.stop_signal.as_deref(),
        },
        rootfs: RootFs { typ: "layers", diff_ids: diff_ids.clone() },
        history: layers
            .iter()
            .map(|l| History { created: CREATED, created_by: "masctl image build", comment: &l.comment })
            .collect(),
    };
    let config = serde_json::to_vec(&cfg)?;
    let config_digest = sha256_hex(&config);
    let manifest = serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: "application/vnd.oci.image.manifest.v1+json",
        config: Descriptor {
            media_type: "application/vnd.oci.image.config.v1+json",
            digest: format!("sha256:{config_digest}"),
            size: config.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        },
        layers: layers
            .iter()
            .map(|l| Descriptor {
                media_type: LAYER_MEDIA,
                digest: format!("sha256:{}", l.layer.digest),
                size: l.layer.size(),
                platform: None,
                annotations: BTreeMap::new(),
            })
            .collect(),
    })?;
    let manifest_digest = sha256_hex(&manifest);
    Ok(ImageJson { config, config_digest, manifest, manifest_digest })
}

fn index_json(json: &ImageJson, repo: &str, tag: &str) -> Result<Vec<u8>> {
    let mut annotations = BTreeMap::new();
    annotations.insert("io.containerd.image.name", format!("{repo}:{tag}"));
    annotations.insert("org.opencontainers.image.ref.name", tag.to_string());
    Ok(serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: "application/vnd.oci.image.index.v1+json",
        manifests: vec![Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json",
            digest: format!("sha256:{}", json.manifest_digest),
            size: json.manifest.len() as u64,
            platform: Some(Platform { architecture: "amd64", os: "linux" }),
            annotations,
        }],
    })?)
}

/// Writes the dual-format archive. Entries are sorted, owned by 0:0, mtime fixed.
pub fn write_archive<W: Write>(
    out: W,
    json: &ImageJson,
    layers: &[LayerWithOrigin],
    repo: &str,
    tag: &str,
) -> Result<W> {
    let blob = |d: &str| format!("blobs/sha256/{d}");
    let repo_tag = format!("{repo}:{tag}");
    let docker_manifest = serde_json::to_vec(&[DockerManifest {
        config: blob(&json.config_digest),
        repo_tags: vec![&repo_tag],
        layers: layers.iter().map(|l| blob(&l.layer.digest)).collect(),
    }])?;
    let index = index_json(json, repo, tag)?;

    let mut files: BTreeMap<String, &[u8]> = BTreeMap::new();
    files.insert(blob(&json.config_digest), &json.config);
    files.insert(blob(&json.manifest_digest), &json.manifest);
    for l in layers {
        files.insert(blob(&l.layer.digest), &l.layer.tar);
    }
    files.insert("index.json".into(), &index);
    files.insert("manifest.json".into(), &docker_manifest);
    files.insert("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#);

    let mut b = tar::Builder::new(out);
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = header(EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, dir, std::io::empty())?;
    }
    for (path, data) in files {
        let mut h = header(EntryType::Regular, 0o644, data.len() as u64);
        b.append_data(&mut h, path, data)?;
    }
    Ok(b.into_inner()?)
}

fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h
}
