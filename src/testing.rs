//! Test-only switches: environment variables the integration tests set to steer parbake into
//! states a real run reaches only by bad luck (a bake interrupted mid-build, a claim held by
//! another run). Nothing else reads them, and a production run never sets them. They are read
//! once per process ([`switches`]); docs/testing.md lists them.

use std::sync::OnceLock;

/// `PARBAKE_TEST_SKIP_PROVISIONING=1`: an aws bake builds the template's
/// `amazon-ebs.no-provision` source (communicator none, no roles), so a real Packer build runs
/// against a local EC2 API (moto) that cannot boot instances.
pub const SKIP_PROVISIONING: &str = "PARBAKE_TEST_SKIP_PROVISIONING";
/// `PARBAKE_TEST_PAUSE_AT=POINT`: with [`PAUSE_SECONDS`], hold the command at that checkpoint
/// (`crate::interrupt::point`) for N seconds or until a signal, so a test can interrupt it at
/// a known step.
pub const PAUSE_AT: &str = "PARBAKE_TEST_PAUSE_AT";
/// `PARBAKE_TEST_PAUSE_SECONDS=N`: the length of the pause at [`PAUSE_AT`]; with
/// [`SKIP_PROVISIONING`], also how long an aws bake holds its builder instance (Ctrl-C tests).
pub const PAUSE_SECONDS: &str = "PARBAKE_TEST_PAUSE_SECONDS";
/// `PARBAKE_CLAIM_POLL_SECONDS=N`: how often an aws bake waiting for another run's claim on a
/// layer looks again (default 15 s); the claim tests shorten it.
pub const CLAIM_POLL_SECONDS: &str = "PARBAKE_CLAIM_POLL_SECONDS";

/// `PARBAKE_TEST_BUILDER_TTL_SECONDS=N`: an aws bake tags its builder instance, its volumes
/// and its claim to expire after N seconds instead of 4 h, so a test can SIGKILL a bake and
/// see `parbake gc` collect what it left.
pub const BUILDER_TTL_SECONDS: &str = "PARBAKE_TEST_BUILDER_TTL_SECONDS";

/// The switches as this process found them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Switches {
    pub skip_provisioning: bool,
    pub pause_at: Option<String>,
    pub pause_seconds: Option<u32>,
    pub claim_poll_seconds: Option<u64>,
    pub builder_ttl_seconds: Option<u64>,
}

/// The switches, read from the environment on first use.
pub fn switches() -> &'static Switches {
    static SWITCHES: OnceLock<Switches> = OnceLock::new();
    SWITCHES.get_or_init(|| Switches::from(|name| std::env::var(name).ok()))
}

impl Switches {
    /// Reads the switches through `var` (the environment, or a map in unit tests).
    pub fn from(var: impl Fn(&str) -> Option<String>) -> Switches {
        Switches {
            skip_provisioning: var(SKIP_PROVISIONING).as_deref() == Some("1"),
            pause_at: var(PAUSE_AT),
            pause_seconds: var(PAUSE_SECONDS).and_then(|s| s.parse().ok()),
            claim_poll_seconds: var(CLAIM_POLL_SECONDS).and_then(|s| s.parse().ok()),
            builder_ttl_seconds: var(BUILDER_TTL_SECONDS).and_then(|s| s.parse().ok()),
        }
    }

    /// How long an aws bake holds its builder instance: only without provisioning.
    pub fn builder_pause_seconds(&self) -> Option<u32> {
        self.pause_seconds.filter(|_| self.skip_provisioning)
    }
}

/// Holds the command at `point` when [`PAUSE_AT`] names it, for [`PAUSE_SECONDS`] or until
/// `stop` says SIGINT/SIGTERM arrived (`crate::interrupt::interrupted`, passed in so that this
/// module imports nothing of parbake's).
pub fn pause_at(point: &str, stop: impl Fn() -> bool) {
    let s = switches();
    let (Some(at), Some(seconds)) = (s.pause_at.as_deref(), s.pause_seconds) else {
        return;
    };
    if at != point {
        return;
    }
    crate::printer::stderr::line(format!(
        "parbake: test pause at {point} for {seconds}s ({PAUSE_AT})"
    ));
    let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds.into());
    while !stop() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Switches {
        Switches::from(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn no_switches_by_default() {
        assert_eq!(read(&[]), Switches::default());
    }

    #[test]
    fn the_builder_pause_needs_skip_provisioning_and_a_number() {
        assert_eq!(read(&[(PAUSE_SECONDS, "6")]).builder_pause_seconds(), None);
        let both = read(&[(SKIP_PROVISIONING, "1"), (PAUSE_SECONDS, "6")]);
        assert_eq!(both.builder_pause_seconds(), Some(6));
        let bad = read(&[(SKIP_PROVISIONING, "1"), (PAUSE_SECONDS, "soon")]);
        assert_eq!(bad.builder_pause_seconds(), None);
        assert!(!read(&[(SKIP_PROVISIONING, "yes")]).skip_provisioning);
    }
}
