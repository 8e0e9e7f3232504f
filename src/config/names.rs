//! The rules for every name and word that reaches a generated file: stack and image names
//! (file names), SSH users, Debian package names, EC2 identifiers. A name that passes can be
//! written into comments, paths and tags as it is; everything else is refused at load time.

/// Longest stack or image name: layer names join them, and AMI names and tags have limits.
pub const NAME_MAX: usize = 64;

/// Stack, image (and role) names: ASCII letters, digits, `_` and `-`, not starting with `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Role names: a name, or `namespace.name` as `ansible-galaxy install` names the roles it
/// installs (`geerlingguy.nginx`, `dev-sec.os-hardening`). Each part follows the name rule; a
/// role inside a collection (`ns.collection.role`) is not a role directory.
pub fn valid_role_name(name: &str) -> bool {
    name.len() <= NAME_MAX
        && match name.split_once('.') {
            Some((namespace, rest)) => valid_name(namespace) && valid_name(rest),
            None => valid_name(name),
        }
}

/// A role inside a vendored collection, by its fully qualified name
/// `namespace.collection.role`: exactly three parts, each lowercase letters, digits and `_`.
/// The namespace and collection start with a letter (Galaxy's rule); the role may start with
/// `_`, as internal roles do (`community.sops._install_age`), and ansible-core runs them. At
/// most [`NAME_MAX`] characters in all.
pub fn valid_collection_role(name: &str) -> bool {
    let part = |p: &str, first: fn(char) -> bool| {
        p.starts_with(first)
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let letter = |c: char| c.is_ascii_lowercase();
    let parts: Vec<&str> = name.split('.').collect();
    name.len() <= NAME_MAX
        && parts.len() == 3
        && part(parts[0], letter)
        && part(parts[1], letter)
        && part(parts[2], |c| c.is_ascii_lowercase() || c == '_')
}

/// A name written as a collection's role: two dots or more (`ns.collection.role`), where a
/// role directory's name has at most one.
pub fn names_collection_role(name: &str) -> bool {
    name.matches('.').count() >= 2
}

/// `(namespace.collection, role)` of a valid collection role name.
pub fn split_collection_role(name: &str) -> Option<(&str, &str)> {
    valid_collection_role(name)
        .then(|| name.rsplit_once('.'))
        .flatten()
}

/// Any name a role may be named by: a role directory's ([`valid_role_name`]) or a
/// collection's role ([`valid_collection_role`]).
pub fn valid_role_ref(name: &str) -> bool {
    valid_role_name(name) || valid_collection_role(name)
}

/// What a refused collection role name is told.
pub const COLLECTION_ROLE_RULE: &str = "a role of a collection is named `namespace.collection.role`: exactly three parts, each a lowercase letter then lowercase letters, digits and `_`, at most 64 characters in all";

/// What a refused role name is told.
pub const ROLE_NAME_RULE: &str = "a role name is `name` or `namespace.name` (as ansible-galaxy installs them): letters, digits, `_` and `-` in each part, not starting with `-`, at most 64 characters";

/// A login name as `useradd` takes it by default: `[a-z_][a-z0-9_-]*`, at most 32.
pub fn valid_user(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A Debian package name (policy 5.6.1: `[a-z0-9][a-z0-9+.-]+`), optionally `=version`
/// (policy 5.6.12), as apt reads it back: nothing ends in `-`, which apt takes as "remove"
/// (`pkg-`, `pkg=1.0-`), and no version ends in `+` ("install", stripped from the version).
/// A name may end in `+`: apt finds a package by its whole name first (`g++`, `libstdc++6`),
/// and a `+` it strips means "install", what staging does anyway.
pub fn valid_apt_package(spec: &str) -> bool {
    let (name, version) = match spec.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (spec, None),
    };
    let name_ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    let version_ok = version.is_none_or(|v| {
        let epoch_ok = v
            .split_once(':')
            .is_none_or(|(e, _)| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()));
        v.starts_with(|c: char| c.is_ascii_digit())
            && !v.ends_with(['-', '+', ':'])
            && epoch_ok
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+~:-".contains(c))
    });
    name_ok && version_ok
}

/// The rule [`valid_apt_package`] applies, for hints.
pub const APT_PACKAGE_RULE: &str = "write a Debian package name, or `name=version`: lowercase letters, digits, `+`, `-` and `.`, starting with a letter or digit, never ending in `-` (apt reads `pkg-` as \"remove pkg\"); apt options (`-o`, `--x`) and suites (`pkg/bookworm`) are not accepted";

/// An AWS region such as `eu-west-1` or `us-gov-west-1`.
pub fn valid_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && r.len() <= 32
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// An EC2 instance type such as `t3.micro` or `m7i-flex.large`.
pub fn valid_instance_type(t: &str) -> bool {
    match t.split_once('.') {
        Some((family, size)) => [family, size].iter().all(|p| {
            !p.is_empty()
                && p.len() <= 32
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        }),
        None => false,
    }
}

/// `subnet-` and hex digits.
pub fn valid_subnet(s: &str) -> bool {
    s.strip_prefix("subnet-")
        .is_some_and(|h| !h.is_empty() && h.len() <= 32 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// An IAM instance profile name as IAM takes it: 1 to 128 of letters, digits and `+=,.@_-`.
pub fn valid_instance_profile(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

/// An AMI owner: a 12-digit account, or `self`, `amazon`, `aws-marketplace`.
pub fn valid_owner(o: &str) -> bool {
    (o.len() == 12 && o.chars().all(|c| c.is_ascii_digit()))
        || ["self", "amazon", "aws-marketplace"].contains(&o)
}

/// What [`valid_owner`] takes, for hints.
pub const OWNER_RULE: &str = "a 12-digit account id, or `self`, `amazon`, `aws-marketplace`";

/// A source AMI's name pattern, as EC2's `name` filter takes it: one line, 1 to 128 characters.
pub fn valid_ami_name_pattern(p: &str) -> bool {
    one_line(p) && !p.is_empty() && p.len() <= 128
}

/// What [`valid_ami_name_pattern`] takes, for hints.
pub const AMI_NAME_PATTERN_RULE: &str = "an AMI name with `*` wildcards, on one line";

/// Characters EC2 allows in an AMI name (plus `{` `}` for parbake's placeholders), 3 to 128.
pub fn valid_ami_name(n: &str) -> bool {
    (3..=128).contains(&n.len())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "()[] ./-'@_{}".contains(c))
}

/// An EC2 launch template name: 3 to 128 of `[A-Za-z0-9().\-/_]`.
pub fn valid_launch_template_name(n: &str) -> bool {
    (3..=128).contains(&n.len())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "().-/_".contains(c))
}

/// SSM's deepest parameter hierarchy.
pub const SSM_MAX_LEVELS: usize = 15;
/// SSM's longest parameter name.
pub const SSM_MAX_LEN: usize = 1011;

/// An SSM parameter path parbake writes: `/` then `[A-Za-z0-9_.-/]`, at most
/// [`SSM_MAX_LEN`] characters and [`SSM_MAX_LEVELS`] levels, no empty level and no trailing
/// `/`, not under AWS's reserved `/aws` or `/ssm` (any case).
pub fn valid_ssm_parameter_name(n: &str) -> bool {
    ssm_parameter_problem(n).is_none()
}

/// What AWS would refuse in an SSM parameter name, in words; None when it takes it.
pub fn ssm_parameter_problem(n: &str) -> Option<String> {
    let lower = n.to_ascii_lowercase();
    let levels = n.split('/').skip(1).count();
    if !n.starts_with('/') {
        Some("it does not start with `/`".into())
    } else if !(2..=SSM_MAX_LEN).contains(&n.len()) {
        Some(format!("its length is not 2 to {SSM_MAX_LEN} characters"))
    } else if let Some(c) = n
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c)))
    {
        Some(format!("it holds {c:?}, which SSM does not accept"))
    } else if n.ends_with('/') {
        Some("it ends in `/`".into())
    } else if n.contains("//") {
        Some("it has an empty level (`//`)".into())
    } else if levels > SSM_MAX_LEVELS {
        Some(format!(
            "it has {levels} levels, more than SSM's limit of {SSM_MAX_LEVELS}"
        ))
    } else if ["/aws", "/ssm"].iter().any(|p| lower.starts_with(p)) {
        Some("names starting with `aws` or `ssm` (any case) are reserved by AWS".into())
    } else {
        None
    }
}

/// An EC2 tag value: at most 256 characters, letters, digits, spaces and `_.:/=+-@`.
pub fn valid_tag_value(v: &str) -> bool {
    v.chars().count() <= 256
        && v.chars()
            .all(|c| c.is_alphanumeric() || " _.:/=+-@".contains(c))
}

/// The `parbake:owner` tag value for the login name `user` (`$USER`): kept when EC2 takes it
/// as a tag value and it is a single word, else `parbake`, so no control character, quote or
/// oversized value reaches a tag.
pub fn owner_tag_value(user: Option<&str>) -> String {
    match user {
        Some(u) if !u.is_empty() && !u.contains(' ') && valid_tag_value(u) => u.to_string(),
        _ => "parbake".into(),
    }
}

/// Free text that stays on one line: no control characters and no Unicode line breaks.
pub fn one_line(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
}

/// What is wrong with a `stage_pip` entry, as (message, hint); None for an exact pin
/// `name==version` or `name[extra,...]==version`: a PEP 508 name and a PEP 440 version in
/// canonical form (`N!` epoch, release, `aN`/`bN`/`rcN`, `.postN`, `.devN`). Ranges, URLs,
/// paths, options, markers and wildcards are refused, each with its own hint.
pub fn pip_requirement_problem(req: &str) -> Option<(String, &'static str)> {
    const PIN: &str = "pin it exactly, as `name==version` (e.g. `Django==4.2.16`): the wheels are downloaded once, at bake";
    if req.starts_with('-') {
        return Some((
            format!("{req:?} is a pip option, not a requirement"),
            "write only `name==version`; parbake runs pip with its own options",
        ));
    }
    if req.contains('@') || req.contains('/') || req.contains('\\') {
        return Some((format!("{req:?} is a URL or a path, not a pinned requirement"), "stage a release from the package index as `name==version`; a wheel from elsewhere cannot be staged"));
    }
    if req.contains(';') {
        return Some((format!("{req:?} has an environment marker"), "the wheels are downloaded for the image's own Python and architecture: write `name==version` without a marker"));
    }
    let Some((name, version)) = req.split_once("==") else {
        let what = if ["<", ">", "~=", "!="].iter().any(|op| req.contains(op)) {
            "a version range"
        } else {
            "not pinned"
        };
        return Some((format!("{req:?} is {what}"), PIN));
    };
    if version.starts_with('=') || version.contains('*') || version.contains(',') {
        return Some((
            format!("{req:?} is not an exact version (`===`, a wildcard or a range)"),
            PIN,
        ));
    }
    let bare = match name.split_once('[') {
        Some((n, extras))
            if extras
                .strip_suffix(']')
                .is_some_and(|e| e.split(',').all(pep508_name)) =>
        {
            n
        }
        Some(_) => {
            return Some((
                format!("{req:?} has malformed extras"),
                "write extras as `name[extra,other]==version`",
            ))
        }
        None => name,
    };
    if !pep508_name(bare) {
        return Some((format!("{bare:?} is not a Python package name"), "letters, digits, `.`, `_` and `-`, starting and ending with a letter or digit (PEP 508)"));
    }
    if !pep440_version(version) {
        return Some((
            format!("{version:?} is not a release version"),
            "e.g. `4.2.16`, `2.0.0rc1`, `1.0.post1` (PEP 440, canonical form)",
        ));
    }
    None
}

/// A PEP 508 distribution name.
fn pep508_name(n: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    n.starts_with(alnum) && n.ends_with(alnum) && n.chars().all(|c| alnum(c) || "._-".contains(c))
}

/// A PEP 440 version in canonical form: `[N!]N(.N)*[{a|b|rc}N][.postN][.devN]`.
fn pep440_version(v: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let v = match v.split_once('!') {
        Some((epoch, rest)) if digits(epoch) => rest,
        Some(_) => return false,
        None => v,
    };
    let (v, dev) = v.split_once(".dev").unwrap_or((v, "0"));
    let (v, post) = v.split_once(".post").unwrap_or((v, "0"));
    let pre_at = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (release, pre) = v.split_at(pre_at);
    let pre_ok = pre.is_empty()
        || ["a", "b", "rc"]
            .iter()
            .any(|p| pre.strip_prefix(p).is_some_and(digits));
    digits(dev) && digits(post) && pre_ok && release.split('.').all(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["web", "debian12", "a_b-c", "W3"] {
            assert!(valid_name(ok), "{ok}");
        }
        let long = "x".repeat(65);
        for bad in [
            "",
            "-x",
            "a b",
            "a\nb",
            "a.b",
            "a/b",
            "é",
            "a\u{2028}b",
            &long,
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn collection_role_names() {
        for ok in [
            "acme.kit.web",
            "community.zabbix.zabbix_agent",
            "a1.b_2.c3",
            "community.sops._install_age",
        ] {
            assert!(valid_collection_role(ok), "{ok}");
            assert!(valid_role_ref(ok), "{ok}");
        }
        assert_eq!(
            split_collection_role("acme.kit.web"),
            Some(("acme.kit", "web"))
        );
        let long = format!("a.b.{}", "x".repeat(61));
        for bad in [
            "acme..web",
            ".kit.web",
            "acme.kit.",
            "acme.kit.web.extra",
            "Acme.kit.web",
            "acme.kit.Web",
            "acme.kit.we-b",
            "acme.1kit.web",
            "_acme.kit.web",
            "acme._kit.web",
            "acme.kit.web\n",
            "acme.kit",
            &long,
        ] {
            assert!(!valid_collection_role(bad), "{bad:?}");
        }
        assert!(valid_role_ref("geerlingguy.nginx") && valid_role_ref("web"));
        assert!(names_collection_role("a..b") && !names_collection_role("ns.role"));
    }

    #[test]
    fn role_names() {
        for ok in [
            "web",
            "geerlingguy.nginx",
            "dev-sec.os-hardening",
            "a_b.c_d",
            "ANXS.postgresql",
        ] {
            assert!(valid_role_name(ok), "{ok}");
        }
        let long = format!("a.{}", "x".repeat(63));
        for bad in [
            "",
            ".",
            "a.",
            ".a",
            "a..b",
            "ns.coll.role",
            "a/b",
            "a.-b",
            "-a.b",
            "a b.c",
            "a.b\n",
            "..",
            &long,
        ] {
            assert!(!valid_role_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn users() {
        assert!(valid_user("debian") && valid_user("ec2-user") && valid_user("_svc1"));
        for bad in ["", "Root", "1abc", "a b", "a;id", "a\n", &"a".repeat(33)] {
            assert!(!valid_user(bad), "{bad:?}");
        }
    }

    #[test]
    fn apt_packages() {
        for ok in [
            "nginx",
            "python3-venv",
            "libstdc++6",
            "g++",
            "nginx=1.22.1-9",
            "a0=1:2.3~rc1+b1",
        ] {
            assert!(valid_apt_package(ok), "{ok}");
        }
        for bad in [
            "--allow-unauthenticated",
            "-o",
            "Nginx",
            "x",
            "a b",
            "nginx=",
            "nginx=a",
            "nginx=1 2",
            "a/b",
            "nginx\n",
            "nginx-",
            "nginx=1.0-",
            "nginx=1.0+",
            "nginx=x:1.0",
            "nginx/bookworm",
        ] {
            assert!(!valid_apt_package(bad), "{bad:?}");
        }
    }

    #[test]
    fn ssm_parameter_names_as_aws_takes_them() {
        let deep = "/a".repeat(SSM_MAX_LEVELS);
        for ok in ["/parbake/web/ami", "/x", deep.as_str(), "/a.b-c_d/E1"] {
            assert_eq!(ssm_parameter_problem(ok), None, "{ok}");
        }
        let deeper = "/a".repeat(SSM_MAX_LEVELS + 1);
        let long = format!("/{}", "a".repeat(SSM_MAX_LEN));
        for (bad, why) in [
            ("/parbake/web/", "ends in `/`"),
            (deeper.as_str(), "16 levels"),
            (long.as_str(), "length"),
            ("parbake/web", "start with `/`"),
            ("/a//b", "empty level"),
            ("/AWS/x", "reserved"),
            ("/ssmx", "reserved"),
            ("/a b", "' '"),
            ("/a\u{e9}", "SSM does not accept"),
        ] {
            let got = ssm_parameter_problem(bad).unwrap_or_default();
            assert!(got.contains(why), "{bad:?}: {got:?}");
        }
    }

    #[test]
    fn owner_tag_falls_back_unless_ec2_takes_it() {
        assert_eq!(owner_tag_value(Some("alice")), "alice");
        assert_eq!(
            owner_tag_value(Some("ci@build.example")),
            "ci@build.example"
        );
        for bad in [
            None,
            Some(""),
            Some("a b"),
            Some("a\nparbake:status=done"),
            Some("x\u{1b}[31m"),
            Some("a\"b"),
            Some(&*"a".repeat(257)),
        ] {
            assert_eq!(owner_tag_value(bad), "parbake", "{bad:?}");
        }
    }

    #[test]
    fn aws_words() {
        assert!(valid_region("eu-west-1") && valid_region("us-gov-west-1"));
        assert!(
            !valid_region("eu-west") && !valid_region("EU-west-1") && !valid_region("eu west-1")
        );
        assert!(valid_instance_type("t3.micro") && valid_instance_type("m7i-flex.large"));
        assert!(!valid_instance_type("t3") && !valid_instance_type("t3.micro\n"));
        assert!(valid_subnet("subnet-0abc12") && !valid_subnet("subnet-") && !valid_subnet("sg-1"));
        assert!(valid_owner("136693071363") && valid_owner("amazon") && !valid_owner("1234"));
        assert!(
            valid_ami_name("parbake-{image}-{layer}-{hash}")
                && !valid_ami_name("a\nb")
                && !valid_ami_name("ab")
        );
        assert!(!one_line("a b\t") && one_line("root=/dev/vda rw"));
    }

    #[test]
    fn pip_requirements() {
        for ok in [
            "Django==4.2.16",
            "gunicorn==23.0.0",
            "zope.interface==6.0",
            "a==1",
            "x_y-z==2.0rc1",
            "p==1!2.0.post3.dev4",
            "requests[socks,security]==2.31.0",
        ] {
            assert_eq!(pip_requirement_problem(ok), None, "{ok}");
        }
        for bad in [
            "Django",
            "Django>=4.2",
            "Django~=4.2",
            "Django==4.2.*",
            "Django===4.2",
            "Django==4.2,<5",
            "https://x/y.whl",
            "Django @ https://x/y.whl",
            "./pkg",
            "-e .",
            "--index-url=http://x",
            "Django==4.2; python_version>'3'",
            "-x==1",
            "dj ango==1",
            "_x==1",
            "Django==latest",
            "Django==4.2+local",
            "Django==",
            "a[b==1",
            "a[]==1",
        ] {
            assert!(pip_requirement_problem(bad).is_some(), "{bad}");
        }
    }
}
