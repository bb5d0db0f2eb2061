//! The Docker Engine edge (bollard): load archives, pull by digest, inspect images.
//! The API version is negotiated, since Docker 20.10 speaks at most 1.41.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::{
    CreateImageOptionsBuilder, ImportImageOptionsBuilder, RemoveImageOptionsBuilder,
};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::image::reference::Reference;

pub struct Engine {
    docker: Docker,
}

/// What masctl checks of an image in the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageState {
    pub id: String,
    pub layers: Vec<String>,
    pub repo_digests: Vec<String>,
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl Engine {
    /// Connects to `DOCKER_HOST` or the default socket and negotiates the API version.
    pub async fn connect() -> Result<Engine> {
        let docker = Docker::connect_with_defaults().context("connecting to the Docker engine")?;
        let docker = docker
            .negotiate_version()
            .await
            .context("the Docker engine does not answer (is dockerd running? is /var/run/docker.sock there?)")?;
        Ok(Engine { docker })
    }

    pub async fn inspect(&self, name: &str) -> Result<Option<ImageState>> {
        match self.docker.inspect_image(name).await {
            Ok(i) => Ok(Some(ImageState {
                id: i.id.unwrap_or_default(),
                layers: i.root_fs.and_then(|r| r.layers).unwrap_or_default(),
                repo_digests: i.repo_digests.unwrap_or_default(),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("inspecting image {name}")),
        }
    }

    /// `docker load` of an archive, reading the response stream to its end (errors
    /// arrive inside it with HTTP 200).
    pub async fn load(&self, archive: &Path) -> Result<()> {
        let mut file = std::fs::File::open(archive)
            .with_context(|| format!("opening {}", archive.display()))?;
        let chunks = std::iter::from_fn(move || {
            let mut buf = vec![0u8; 1 << 20];
            match file.read(&mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some(Ok::<Bytes, std::io::Error>(Bytes::from(buf)))
                }
                Err(e) => Some(Err(e)),
            }
        });
        let opts = ImportImageOptionsBuilder::default().quiet(true).build();
        let mut stream =
            self.docker
                .import_image_stream(opts, futures_util::stream::iter(chunks), None);
        while let Some(item) = stream.next().await {
            let info = item.context("loading the image archive into Docker")?;
            if let Some(e) = info.error_detail.and_then(|d| d.message) {
                bail!("Docker refused the archive: {e}");
            }
        }
        Ok(())
    }

    /// Pulls `reference` by digest and checks that the engine holds that digest.
    pub async fn pull(&self, reference: &Reference) -> Result<ImageState> {
        let pinned = reference.pinned();
        let opts = CreateImageOptionsBuilder::default()
            .from_image(&pinned)
            .build();
        let mut stream = self.docker.create_image(Some(opts), None, None);
        while let Some(item) = stream.next().await {
            let info = item.with_context(|| format!("pulling {pinned}"))?;
            if let Some(e) = info.error_detail.and_then(|d| d.message) {
                bail!("pulling {pinned}: {e}");
            }
        }
        let state = self
            .inspect(&pinned)
            .await?
            .with_context(|| format!("{pinned} is not in the engine after the pull"))?;
        if !state
            .repo_digests
            .iter()
            .any(|d| d.ends_with(&format!("@{}", reference.digest)))
        {
            // Never keep an image that is not what the reference pins.
            let _ = self
                .docker
                .remove_image(
                    &state.id,
                    Some(RemoveImageOptionsBuilder::default().force(true).build()),
                    None,
                )
                .await;
            bail!(
                "{pinned}: the registry served digests {:?}, not {}",
                state.repo_digests,
                reference.digest
            );
        }
        Ok(state)
    }
}
