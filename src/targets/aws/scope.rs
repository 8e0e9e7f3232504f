//! Which parbake AMIs are this project's. EC2 is one registry for the whole account, and two
//! repositories may use the same image and stack names: each AMI carries its project's id
//! (`parbake:project`, from `parbake.yml`), and cache lookups, `userdata`, `launch`,
//! `verify`, `publish`, `images` and `prune` see only the AMIs of their own project. A project
//! without an id sees only AMIs with no project tag (parbake's behaviour before project ids),
//! and `prune` refuses to remove anything for it.

use aws_sdk_ec2::types::Filter;

use super::ami::Ami;
use crate::config::Project;
use crate::error::{Error, Result};

/// The tag that names an AMI's project.
pub const PROJECT_TAG: &str = "parbake:project";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The AMIs tagged with this project id.
    Project(String),
    /// A project without an id: the AMIs with no project tag.
    Unscoped,
}

/// Whose an AMI is, seen from one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Ours,
    /// Tagged with another project's id.
    Other(String),
    /// No project tag: baked before project ids, or by a project without one.
    Untagged,
}

impl Scope {
    pub fn of(project: &Project) -> Scope {
        match &project.id {
            Some(id) => Scope::Project(id.clone()),
            None => Scope::Unscoped,
        }
    }

    /// The project id, or an error that says why `what` needs one.
    pub fn id(&self, what: &str) -> Result<&str> {
        match self {
            Scope::Project(id) => Ok(id),
            Scope::Unscoped => Err(Error::user(format!(
                "{what} needs a project id: without one parbake cannot tell this project's AMIs from another checkout's that uses the same image names"
            ))
            .with_hint(format!(
                "add `project: NAME` to {} at the project root, NAME the same in every clone of this repository and unique in the AWS account (docs/aws.md, \"Project scope\")",
                crate::config::project_file::FILE
            ))),
        }
    }

    /// The server-side filter for DescribeImages (none for an unscoped project: EC2 cannot
    /// filter on a missing tag, so [`Scope::holds`] does).
    pub fn filters(&self) -> Vec<Filter> {
        match self {
            Scope::Project(id) => vec![Filter::builder()
                .name(format!("tag:{PROJECT_TAG}"))
                .values(id)
                .build()],
            Scope::Unscoped => Vec::new(),
        }
    }

    pub fn owner(&self, ami: &Ami) -> Owner {
        match (self, ami.tags.get(PROJECT_TAG)) {
            (Scope::Project(id), Some(tag)) if tag == id => Owner::Ours,
            (_, Some(tag)) => Owner::Other(tag.clone()),
            (Scope::Unscoped, None) => Owner::Ours,
            (Scope::Project(_), None) => Owner::Untagged,
        }
    }

    pub fn holds(&self, ami: &Ami) -> bool {
        self.owner(ami) == Owner::Ours
    }

    /// The AMI tag a bake sets, if any.
    pub fn tag(&self) -> Option<(String, String)> {
        match self {
            Scope::Project(id) => Some((PROJECT_TAG.to_string(), id.clone())),
            Scope::Unscoped => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ami(project: Option<&str>) -> Ami {
        Ami {
            id: "ami-1".into(),
            name: "n".into(),
            creation_date: String::new(),
            architecture: "x86_64".into(),
            owner: "self".into(),
            state: "available".into(),
            tags: project
                .map(|p| (PROJECT_TAG.to_string(), p.to_string()))
                .into_iter()
                .collect(),
            size_gib: 8,
            lifecycle: Default::default(),
        }
    }

    #[test]
    fn owners_seen_from_a_project_and_from_an_unscoped_one() {
        let a = Scope::Project("a".into());
        assert_eq!(a.owner(&ami(Some("a"))), Owner::Ours);
        assert_eq!(a.owner(&ami(Some("b"))), Owner::Other("b".into()));
        assert_eq!(a.owner(&ami(None)), Owner::Untagged);
        assert_eq!(Scope::Unscoped.owner(&ami(None)), Owner::Ours);
        assert_eq!(
            Scope::Unscoped.owner(&ami(Some("a"))),
            Owner::Other("a".into())
        );
        assert!(Scope::Unscoped.id("prune").is_err());
    }
}
