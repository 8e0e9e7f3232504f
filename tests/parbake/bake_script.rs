//! The bake driver's wait for the builder's own boot work (issue 13, item 4): cloud-init
//! still running and the dpkg lock held, as on a cloud image that just booted. The shell
//! snippet rendered into every bake.sh runs here for real, with a stand-in `cloud-init` and
//! the real dpkg lock held by another process.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use parbake::render::playbook::WAIT_FOR_BOOT;

/// The whole number `text` starts with, when `suffix` follows it: `3` in `3 s for x ...`.
fn number_before(text: &str, suffix: &str) -> Option<u64> {
    text[..text.find(suffix)?].trim().parse().ok()
}

#[test]
fn the_bake_waits_for_cloud_init_and_the_dpkg_lock_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("cloud-init");
    // `status --wait` returns after 2 s, as cloud-init does when its final stage ends
    std::fs::write(
        &fake,
        "#!/bin/sh\n[ \"$2\" = --wait ] && sleep 2\necho 'status: done'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    // another process holds the dpkg lock for 6 s (as apt-daily would)
    let holder = Command::new("python3")
        .args([
            "-c",
            "import fcntl, sys, time\nf = open('/var/lib/dpkg/lock-frontend', 'a')\nfcntl.lockf(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(6)\n",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut holder = holder;
    {
        use std::io::Read;
        let mut buf = [0u8; 5];
        holder
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut buf)
            .unwrap();
    }
    let started = Instant::now();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", WAIT_FOR_BOOT])
        .env(
            "PATH",
            format!(
                "{}:{}",
                dir.path().display(),
                std::env::var("PATH").unwrap()
            ),
        )
        .output()
        .unwrap();
    let took = started.elapsed();
    holder.wait().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 2 s on a quiet machine; a loaded one adds a second or two
    let waited: u64 = text
        .split("waited ")
        .nth(1)
        .and_then(|rest| number_before(rest, " s for cloud-init to finish"))
        .unwrap_or_else(|| panic!("no cloud-init wait in: {text}"));
    assert!((2..30).contains(&waited), "{text}");
    assert!(text.contains("s for the dpkg lock"), "{text}");
    assert!(
        !text.contains("waited 0 s for the dpkg lock"),
        "the lock was held: {text}"
    );
    assert!(took >= Duration::from_secs(5), "{took:?}");
}
