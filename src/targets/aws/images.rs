//! `parbake images`: the project's AMIs (see `scope`) per region as a lineage tree (base layers, with the stack
//! layers built on them), with age, size and state, each marked current or stale: stale when
//! baking that same layer today would give another hash (a role, a var, the template, the
//! upstream source AMI or parbake changed).

use std::collections::BTreeMap;

use serde::Serialize;

use super::ami::{epoch_of, manifest_from_tags, Ami};
use super::ec2::{Ec2, Endpoint};
use super::gc::regions;
use super::scope::{Owner, Scope};
use crate::config::Project;
use crate::error::Result;
use crate::plan::{PlanRequest, Target};
use crate::runtime::{runtime, Threads};
use crate::store::now_epoch;

#[derive(Debug, Clone, Serialize)]
pub struct ImageNode {
    pub id: String,
    pub name: String,
    pub layer: String,
    pub layer_hash: String,
    pub image: String,
    pub stack: Option<String>,
    /// The architecture it was baked for (`parbake:arch`, else EC2's).
    pub arch: String,
    pub state: String,
    pub age_s: u64,
    pub size_gib: i64,
    /// `current`, `stale` or `unknown`.
    pub status: String,
    pub why: Option<String>,
    /// The launch template versions that name it (`web-fleet v3 default`, `web-fleet v2`).
    #[serde(default)]
    pub published: Vec<String>,
    pub children: Vec<ImageNode>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionImages {
    pub region: String,
    pub images: Vec<ImageNode>,
    /// parbake AMIs of other projects (another `parbake:project`) there, not listed.
    pub other_projects: usize,
    /// parbake AMIs with no project tag there, not listed (unless this project has no id).
    pub without_project: usize,
}

/// What an AMI is compared with today, per architecture: the project as that architecture's
/// chains see it, and the source identity each of its images would bake from in the region.
pub(super) struct Today {
    pub(super) views: BTreeMap<String, Project>,
    /// (image, architecture) → source identity.
    pub(super) sources: BTreeMap<(String, String), String>,
}

/// The layer hash and run hash the layer an AMI carries would have if baked today, or why they
/// cannot be known.
fn current_hash(today: &Today, ami: &Ami) -> std::result::Result<(String, String), String> {
    let m = manifest_from_tags(&ami.id, &ami.tags)?;
    let arch = ami.arch();
    let project = today
        .views
        .get(&arch)
        .ok_or_else(|| format!("no image bakes {arch} any more"))?;
    let image = project
        .images
        .get(&m.image)
        .ok_or_else(|| format!("image `{}` is no longer defined for {arch}", m.image))?;
    let stack = match &m.stack {
        Some(s) => project
            .stacks
            .get(s)
            .ok_or_else(|| format!("stack `{s}` is no longer defined"))?,
        None => project
            .stacks
            .values()
            .find(|s| s.def.image == image.name)
            .ok_or_else(|| format!("no stack uses image `{}`", image.name))?,
    };
    let source = today
        .sources
        .get(&(image.name.clone(), arch.clone()))
        .ok_or_else(|| format!("image `{}` has no aws source for {arch}", image.name))?;
    let plan_with = |promote: Vec<String>| {
        crate::targets::plan_for(
            project,
            &PlanRequest {
                stack: stack.name.clone(),
                promote,
                target: Target::Aws,
                source_identity: None,
            },
            |_| Ok(source.clone()),
        )
        .map_err(|e| e.to_string())
    };
    let base = plan_with(Vec::new())?;
    if m.stack.is_none() {
        return Ok((base.layers[0].hash.clone(), base.layers[0].run_hash.clone()));
    }
    let basic = &base.layers[0].baked;
    let promote: Vec<String> = m
        .baked
        .iter()
        .filter(|r| !basic.contains(r))
        .cloned()
        .collect();
    let p = plan_with(promote)?;
    Ok((p.top().hash.clone(), p.top().run_hash.clone()))
}

/// parbake's AMIs in every region the project uses, as lineage trees.
pub fn list(project: &Project) -> Result<Vec<RegionImages>> {
    let rt = runtime(Threads::Current)?;
    let now = now_epoch();
    let mut out = Vec::new();
    for region in regions(project) {
        let (all, today) = rt.block_on(region_amis(project, &region))?;
        let scope = Scope::of(project);
        let (amis, others): (Vec<Ami>, Vec<Ami>) = all.into_iter().partition(|a| scope.holds(a));
        let other_projects = others
            .iter()
            .filter(|a| matches!(scope.owner(a), Owner::Other(_)))
            .count();
        let published = rt.block_on(published_in(&region, &amis))?;
        let nodes = amis
            .iter()
            .map(|ami| {
                let (parent, mut node) = node_of(&today, ami, now);
                node.published = published.get(&ami.id).cloned().unwrap_or_default();
                (parent, node)
            })
            .collect();
        out.push(RegionImages {
            images: lineage(nodes),
            region,
            other_projects,
            without_project: others.len() - other_projects,
        });
    }
    Ok(out)
}

/// AMI → the launch template versions in the region that name it, defaults first.
async fn published_in(region: &str, amis: &[Ami]) -> Result<BTreeMap<String, Vec<String>>> {
    let ec2 = Ec2::connect(region, &Endpoint::from_env()).await;
    let ids = amis.iter().map(|a| a.id.clone()).collect();
    let mut refs = ec2.launch_template_refs(&ids).await?;
    refs.sort_by_key(|r| (!r.default, r.template.clone(), std::cmp::Reverse(r.version)));
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in refs {
        out.entry(r.ami).or_default().push(format!(
            "{} v{}{}",
            r.template,
            r.version,
            if r.default { " default" } else { "" }
        ));
    }
    Ok(out)
}

/// A region's parbake AMIs, and what each is compared with today.
async fn region_amis(project: &Project, region: &str) -> Result<(Vec<Ami>, Today)> {
    let ec2 = Ec2::connect(region, &Endpoint::from_env()).await;
    let amis = ec2.parbake_amis().await?;
    let today = today_in(project, &ec2, region).await?;
    Ok((amis, today))
}

/// Each architecture's view of the project, and the source identity each image with an aws
/// source in `region` would bake from there today (its source AMI resolved).
pub(super) async fn today_in(project: &Project, ec2: &Ec2, region: &str) -> Result<Today> {
    let mut today = Today {
        views: BTreeMap::new(),
        sources: BTreeMap::new(),
    };
    for (arch, view) in project.arch_views() {
        for (image, identity) in sources_in(&view, ec2, region).await? {
            today.sources.insert((image, arch.clone()), identity);
        }
        today.views.insert(arch, view);
    }
    Ok(today)
}

/// The source identity each image of one architecture's view with an aws source in `region`
/// would bake from there today, by image name.
async fn sources_in(
    project: &Project,
    ec2: &Ec2,
    region: &str,
) -> Result<BTreeMap<String, String>> {
    let mut sources = BTreeMap::new();
    for image in project.images.values() {
        let Some(src) = image
            .def
            .sources
            .aws
            .as_ref()
            .filter(|s| s.region == region)
        else {
            continue;
        };
        let ami = ec2.resolve_source_ami(&src.source_ami).await?;
        sources.insert(
            image.name.clone(),
            crate::plan::source_identity::aws_resolved(src, &ami.id),
        );
    }
    Ok(sources)
}

/// One AMI as a tree node (no children yet) with its parent AMI, marked current or stale.
fn node_of(today: &Today, ami: &Ami, now: u64) -> (Option<String>, ImageNode) {
    let tag = |k: &str| ami.tags.get(k).cloned();
    let (status, why) = match current_hash(today, ami) {
        Ok((hash, _)) if Some(&hash) == ami.tags.get("parbake:layer-hash") => (
            "current",
            tag("parbake:refresh-of").map(|run| {
                format!(
                    "a payload refresh of run layer {}",
                    &run[..12.min(run.len())]
                )
            }),
        ),
        // its roles' run is today's; the payload it carries is not
        Ok((hash, run))
            if Some(&run) == ami.tags.get("parbake:run-hash")
                && !ami.tags.contains_key("parbake:refresh-of") =>
        {
            (
                "run",
                Some(format!(
                    "its run is current; today's payload is its refresh {}",
                    &hash[..12]
                )),
            )
        }
        Ok((hash, _)) => (
            "stale",
            Some(format!("baking it today gives layer {}", &hash[..12])),
        ),
        Err(e) => ("unknown", Some(e)),
    };
    let node = ImageNode {
        id: ami.id.clone(),
        name: ami.name.clone(),
        layer: tag("parbake:layer").unwrap_or_default(),
        layer_hash: tag("parbake:layer-hash").unwrap_or_default(),
        image: tag("parbake:image").unwrap_or_default(),
        stack: tag("parbake:stack"),
        arch: ami.arch(),
        state: ami.state.clone(),
        age_s: epoch_of(&ami.creation_date)
            .map(|t| now.saturating_sub(t))
            .unwrap_or(0),
        size_gib: ami.size_gib,
        status: status.into(),
        why,
        published: Vec::new(),
        children: Vec::new(),
    };
    (tag("parbake:parent-ami"), node)
}

/// Attaches each node to its parent AMI when that is listed too (stack layers first); the
/// roots, newest first.
fn lineage(nodes: Vec<(Option<String>, ImageNode)>) -> Vec<ImageNode> {
    let mut nodes: BTreeMap<String, (Option<String>, ImageNode)> = nodes
        .into_iter()
        .map(|(parent, n)| (n.id.clone(), (parent, n)))
        .collect();
    // deepest first, so a child is attached before its parent moves under its own parent
    let parents: BTreeMap<String, Option<String>> = nodes
        .iter()
        .map(|(id, (p, _))| (id.clone(), p.clone()))
        .collect();
    let mut ids: Vec<String> = nodes.keys().cloned().collect();
    ids.sort_by_key(|id| std::cmp::Reverse(crate::store::depth(&parents, id)));
    for id in ids {
        let parent = nodes[&id].0.clone();
        if let Some(p) = parent.filter(|p| nodes.contains_key(p) && *p != id) {
            let (_, child) = nodes.remove(&id).unwrap();
            nodes.get_mut(&p).unwrap().1.children.push(child);
        }
    }
    let mut images: Vec<ImageNode> = nodes.into_values().map(|(_, n)| n).collect();
    images.sort_by(|a, b| a.age_s.cmp(&b.age_s).then(a.id.cmp(&b.id)));
    images
}

pub fn tree_text(regions: &[RegionImages]) -> String {
    fn age(s: u64) -> String {
        match s {
            s if s < 3600 => format!("{}m", s / 60),
            s if s < 86_400 => format!("{}h", s / 3600),
            s => format!("{}d", s / 86_400),
        }
    }
    fn node(out: &mut String, n: &ImageNode, depth: usize) {
        out.push_str(&format!(
            "  {}{}  {:<20} {}  {:<9} {:>4}  {:>3} GiB  {}{}\n",
            "    ".repeat(depth),
            n.id,
            n.layer,
            &n.layer_hash[..12.min(n.layer_hash.len())],
            n.state,
            age(n.age_s),
            n.size_gib,
            n.status,
            n.why
                .as_ref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        ));
        if !n.published.is_empty() {
            out.push_str(&format!(
                "  {}  published: {}\n",
                "    ".repeat(depth),
                n.published.join(", ")
            ));
        }
        for c in &n.children {
            node(out, c, depth + 1);
        }
    }
    let mut out = String::new();
    for r in regions {
        out.push_str(&format!(
            "{} ({} parbake AMIs)\n",
            r.region,
            count(&r.images)
        ));
        // grouped by architecture when the region holds several
        let mut arches: Vec<&str> = r.images.iter().map(|n| n.arch.as_str()).collect();
        arches.sort();
        arches.dedup();
        for arch in &arches {
            if arches.len() > 1 {
                out.push_str(&format!("  {arch}\n"));
            }
            for n in r.images.iter().filter(|n| n.arch == *arch) {
                node(&mut out, n, 0);
            }
        }
        if r.other_projects + r.without_project > 0 {
            out.push_str(&format!(
                "  not listed: {} AMIs of other projects, {} with no parbake:project tag\n",
                r.other_projects, r.without_project
            ));
        }
    }
    out
}

fn count(nodes: &[ImageNode]) -> usize {
    nodes.iter().map(|n| 1 + count(&n.children)).sum()
}

#[cfg(test)]
mod lineage_tests {
    use super::*;

    fn node(id: &str, stack: Option<&str>) -> ImageNode {
        ImageNode {
            id: id.into(),
            name: id.into(),
            layer: "x".into(),
            layer_hash: "h".into(),
            image: "debian12".into(),
            stack: stack.map(String::from),
            arch: "x86_64".into(),
            state: "available".into(),
            age_s: 0,
            size_gib: 8,
            status: "current".into(),
            why: None,
            published: Vec::new(),
            children: Vec::new(),
        }
    }

    /// A refresh of a stack layer's run AMI is two levels under the base, whatever order the
    /// AMIs come in.
    #[test]
    fn a_refresh_of_a_stack_layer_nests_under_it_under_the_base() {
        let nodes = vec![
            (None, node("ami-1", None)),
            (Some("ami-1".to_string()), node("ami-2", Some("web"))),
            (Some("ami-2".to_string()), node("ami-3", Some("web"))),
        ];
        let roots = lineage(nodes);
        assert_eq!(roots.len(), 1, "{roots:?}");
        assert_eq!(roots[0].children[0].id, "ami-2");
        assert_eq!(roots[0].children[0].children[0].id, "ami-3");
    }
}
