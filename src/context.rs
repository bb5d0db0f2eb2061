//! The command line resolved once: the config (parsed at most once), the state root,
//! the image declarations and the input cache. Everything below the commands takes
//! plain values from here, never the clap structs.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::cli::Global;
use crate::config::{self, Config};
use crate::generation::layout::Layout;
use crate::image::decl::ImagesDir;

pub const DEFAULT_ROOT: &str = "/var/lib/masctl";

pub struct Context {
    pub config_path: PathBuf,
    /// Parsed when the command needs it, or when it says where the state root is.
    config: Option<Config>,
    pub layout: Layout,
    pub images: ImagesDir,
    pub cache: PathBuf,
}

impl Context {
    /// For commands that evaluate the config: it must exist and be valid. A bad config
    /// fails here, before anything on the host changes.
    pub fn with_config(g: &Global) -> Result<ConfiguredContext> {
        let config = config::load(&g.config)?;
        let layout = match &g.root {
            Some(r) => root_layout(r)?,
            None => Layout::new(config.state_root.get_ref()),
        };
        Ok(ConfiguredContext(Context::new(g, Some(config), layout)))
    }

    /// For commands that work on the state root: `--root`/`MASCTL_ROOT`, else the
    /// config's `state_root` (if there is a config), else the default.
    pub fn for_state(g: &Global) -> Result<Context> {
        if let Some(r) = &g.root {
            return Ok(Context::new(g, None, root_layout(r)?));
        }
        if g.config.exists() {
            let config = config::load(&g.config)?;
            let layout = Layout::new(config.state_root.get_ref());
            return Ok(Context::new(g, Some(config), layout));
        }
        Ok(Context::new(g, None, Layout::new(DEFAULT_ROOT)))
    }

    fn new(g: &Global, config: Option<Config>, layout: Layout) -> Context {
        let cache = g.cache.clone().unwrap_or_else(|| layout.cache());
        Context { config_path: g.config.clone(), config, images: images_dir(g.images.as_ref()), cache, layout }
    }

    /// The config, when the command has one.
    pub fn loaded_config(&self) -> Option<&Config> {
        self.config.as_ref()
    }
}

/// A [`Context`] whose config is loaded (made by [`Context::with_config`]), for
/// the commands that evaluate it.
pub struct ConfiguredContext(Context);

impl ConfiguredContext {
    pub fn config(&self) -> &Config {
        match &self.0.config {
            Some(c) => c,
            None => unreachable!("a ConfiguredContext is made only with a config"),
        }
    }
}

impl std::ops::Deref for ConfiguredContext {
    type Target = Context;
    fn deref(&self) -> &Context {
        &self.0
    }
}

/// Links and units name paths under the root: it must be absolute.
fn root_layout(r: &std::path::Path) -> Result<Layout> {
    Ok(Layout::new(std::path::absolute(r).with_context(|| format!("state root {}", r.display()))?))
}

/// Where image declarations live when `--images` is not given: `./images`, else
/// those installed next to the binary, else the system's.
fn images_dir(given: Option<&PathBuf>) -> ImagesDir {
    if let Some(d) = given {
        return ImagesDir { dir: d.clone() };
    }
    let mut candidates = vec![PathBuf::from("images")];
    if let Ok(exe) = std::env::current_exe()
        && let Some(prefix) = exe.parent().and_then(|p| p.parent())
    {
        candidates.push(prefix.join("share/masctl/images"));
    }
    candidates.push(PathBuf::from("/usr/share/masctl/images"));
    let dir = candidates.iter().find(|d| d.join("base.toml").exists()).unwrap_or(&candidates[0]).clone();
    ImagesDir { dir }
}
