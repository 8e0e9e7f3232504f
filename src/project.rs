//! Loading the project a command works on: its vendored content, checked against the lock by
//! [`crate::vendoring`], then its files, checked by [`crate::config`], which takes the vendored
//! roles in. The two meet here, so that config never names vendoring.

use std::path::Path;

use crate::config::Project;
use crate::error::{Error, Result};
use crate::vendoring::Vendored;

/// The checked project at `root`. A vendor directory that disagrees with the lock or
/// `requirements.yml` is refused first, with the hint to run `parbake vendor`.
pub fn load(root: &Path) -> Result<Project> {
    let vendored = Vendored::load(root).map_err(|e| Error::VendorCheck(Box::new(e.into())))?;
    let content = vendored.map(|v| v.content().clone());
    Ok(Project::load(root, content)?)
}
