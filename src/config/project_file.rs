//! `parbake.yml` at the project root: the project's own settings. Today one, `project:`, the
//! project id: every AMI parbake bakes carries it (`parbake:project`), and the AWS target's
//! cache lookups, `userdata`, `images` and `prune` see only the AMIs that carry this project's
//! id. It must be the same in every clone of the repository (a CI clone and a laptop share
//! the cache and prune's scope) and differ from every other project in the AWS account, so it
//! is written down, not derived from a path or a git remote. Without the file (or the key)
//! the project has no id: see docs/aws.md, "Project scope".

use std::path::Path;

use serde::Deserialize;

use super::{ConfigError, SourceFile};

/// The project file's name, at the project root.
pub const FILE: &str = "parbake.yml";
/// Longest project id: it ends every AMI name the project bakes (EC2 allows 128 characters).
pub const ID_MAX: usize = 32;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    project: Option<String>,
}

/// A project id: lowercase ASCII letters and digits, with `-`, `_`, `.` and `/` inside, at
/// most [`ID_MAX`]. No `*` or `?`, which EC2 filters read as wildcards.
pub fn valid_id(id: &str) -> bool {
    let inner = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !id.is_empty()
        && id.len() <= ID_MAX
        && id.starts_with(inner)
        && id.ends_with(inner)
        && id.chars().all(|c| inner(c) || "-_./".contains(c))
}

/// The project id from `parbake.yml` at `root`; None without the file or without the key.
pub fn load_id(root: &Path) -> Result<Option<String>, ConfigError> {
    let path = root.join(FILE);
    let Some(bytes) = crate::fsread::read_optional(root, &path, crate::fsread::CONFIG_LIMIT)?
    else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).map_err(|_| crate::fsread::ReadError {
        path,
        problem: crate::fsread::Problem::NotUtf8,
    })?;
    let file = SourceFile::new(FILE, text);
    let def: ProjectFile = file.parse()?;
    match def.project {
        Some(id) if !valid_id(&id) => Err(file
            .error_for("project", None, format!("`{id}` is not a valid project id"))
            .with_hint(
                "a project id is 1 to 32 lowercase letters, digits and `-` `_` `.` `/`, starting and ending with a letter or digit (`acme-infra`, `acme/infra`); keep it the same in every clone of the repository",
            )
            .into()),
        id => Ok(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids() {
        for ok in ["a", "acme-infra", "acme/infra", "team.web_2", "0x"] {
            assert!(valid_id(ok), "{ok}");
        }
        let long = "a".repeat(ID_MAX + 1);
        for bad in [
            "", "-a", "a-", "Acme", "a*", "a?b", "a b", "é", "a\n", &long,
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Whatever string comes in, an accepted id is safe where it goes: an EC2 filter value
        /// (no `*` or `?` wildcard), a tag value and the end of an AMI name (short, printable
        /// ASCII), and it reads back from `parbake.yml` as itself.
        #[test]
        fn an_accepted_id_is_a_safe_filter_tag_and_name_part(s in "(\\PC{0,40})|([a-zA-Z0-9*?/._ :#-]{0,40})") {
            if valid_id(&s) {
                proptest::prop_assert!(s.len() <= ID_MAX);
                proptest::prop_assert!(s.bytes().all(|b| b.is_ascii_graphic() && b != b'*' && b != b'?'));
                let dir = tempfile::tempdir().unwrap();
                std::fs::write(dir.path().join(FILE), format!("project: {s}\n")).unwrap();
                proptest::prop_assert_eq!(load_id(dir.path()).unwrap(), Some(s.clone()));
            }
        }

        #[test]
        fn ids_of_the_documented_shape_are_accepted(s in "[a-z0-9]([a-z0-9._/-]{0,30}[a-z0-9])?") {
            proptest::prop_assert!(valid_id(&s), "{}", s);
        }
    }
}
