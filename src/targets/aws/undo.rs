//! All or nothing for `publish` and `rollback` on EC2. What can be checked is checked before
//! anything moves (the template's owner, DryRun calls, the SSM parameter's readability). What
//! cannot (SSM PutParameter can still fail) is undone: the default goes back to the version
//! that was the default before, and a version or template this publish created is deleted.
//! When the undo fails too, the error says exactly what moved and gives the commands that
//! revert or finish it.

use super::ec2::Ec2;
use crate::error::Error;

/// What a publish or rollback has moved on one launch template so far.
#[derive(Debug, Clone)]
pub struct Moved {
    /// `publish` or `rollback`.
    pub command: &'static str,
    pub stack: String,
    pub region: String,
    pub template: String,
    pub template_id: String,
    /// The template did not exist: the publish created it (its version 1 is the default).
    pub created_template: bool,
    /// The version the publish added (None for a rollback).
    pub created_version: Option<i64>,
    /// The default now, and before.
    pub default_now: i64,
    pub default_before: Option<i64>,
    /// The command that would finish the job instead (the SSM parameter's update).
    pub finish: Option<String>,
}

/// What is left when an undo fails: the sentence and the commands that deal with it.
struct Left {
    what: String,
    commands: Vec<String>,
}

impl Moved {
    /// Undoes what moved after `failure`, and returns the error to report: the failure, then
    /// what was put back, or exactly what is left and how to revert or finish it.
    pub async fn undo(&self, ec2: &Ec2, failure: Error) -> Error {
        let hints = failure.hints();
        let put_back = if self.created_template {
            self.delete_template(ec2).await
        } else {
            self.revert_default(ec2).await
        };
        let mut e = match put_back {
            Ok(done) => Error::user(format!(
                "{failure}\nthe {} of stack {} was undone: {done}",
                self.command, self.stack
            )),
            Err((undo_error, left)) => {
                let mut e = Error::user(format!(
                    "{failure}\nundoing the {} of stack {} failed too: {undo_error}\nwhat moved: {}",
                    self.command, self.stack, left.what
                ));
                for h in left.commands {
                    e = e.with_hint(h);
                }
                e
            }
        };
        for h in hints {
            e = e.with_hint(h);
        }
        e
    }

    /// A template this publish created goes altogether.
    async fn delete_template(&self, ec2: &Ec2) -> Result<String, (Error, Left)> {
        let (region, id) = (&self.region, &self.template_id);
        match ec2.delete_launch_template(id).await {
            Ok(()) => Ok(format!(
                "launch template {} ({id}), which it created, was deleted",
                self.template
            )),
            Err(e) => Err((
                e,
                Left {
                    what: format!(
                        "launch template {} ({id}) in {region} was created by this {}; its version {} is the default",
                        self.template, self.command, self.default_now
                    ),
                    commands: self.with_finish(vec![format!(
                        "revert it: aws ec2 delete-launch-template --region {region} --launch-template-id {id}"
                    )]),
                },
            )),
        }
    }

    /// The default back to the one before, then the version this publish added deleted (EC2
    /// never deletes the default).
    async fn revert_default(&self, ec2: &Ec2) -> Result<String, (Error, Left)> {
        let (region, id, template) = (&self.region, &self.template_id, &self.template);
        let before = self.default_before.unwrap_or(self.default_now);
        let mut done =
            format!("launch template {template}'s default is version {before}, as before");
        if self.default_now != before {
            if let Err(e) = ec2.set_default_version(id, before).await {
                let mut commands = vec![format!(
                    "revert it: aws ec2 modify-launch-template --region {region} --launch-template-id {id} --default-version {before}"
                )];
                if let Some(v) = self.created_version {
                    commands.push(format!(
                        "then remove the version it added: aws ec2 delete-launch-template-versions --region {region} --launch-template-id {id} --versions {v}"
                    ));
                }
                let what = format!(
                    "launch template {template} ({id}) in {region}: version {} is the default now; version {before} was the default before",
                    self.default_now
                );
                return Err((
                    e,
                    Left {
                        what,
                        commands: self.with_finish(commands),
                    },
                ));
            }
            done = format!(
                "launch template {template}'s default is version {before} again, as before"
            );
        }
        let Some(v) = self.created_version else {
            return Ok(done);
        };
        match ec2.delete_launch_template_version(id, v).await {
            Ok(()) => Ok(format!("{done}; version {v}, which it added, was deleted")),
            Err(e) => Err((
                e,
                Left {
                    what: format!(
                        "launch template {template} ({id}) in {region}: {done}, but version {v}, which this {} added and which is not the default, is still there (a later rollback could land on it)",
                        self.command
                    ),
                    commands: vec![format!(
                        "remove it: aws ec2 delete-launch-template-versions --region {region} --launch-template-id {id} --versions {v}"
                    )],
                },
            )),
        }
    }

    /// The commands, then the one that finishes the job instead, if there is one.
    fn with_finish(&self, mut commands: Vec<String>) -> Vec<String> {
        if let Some(f) = &self.finish {
            commands.push(format!("or finish it instead: {f}"));
        }
        commands
    }
}

/// The aws CLI line that sets an SSM parameter to an AMI, as publish does.
pub fn put_parameter_command(region: &str, name: &str, ami: &str) -> String {
    format!(
        "aws ssm put-parameter --region {region} --name {} --value {} --type String --data-type aws:ec2:image --overwrite",
        shell_escape::escape(name.into()),
        shell_escape::escape(ami.into())
    )
}
