//! EC2 calls over HTTP against a real moto server (PyPI `moto[server]`, pinned in .venv): one
//! server per test run on a free port, ready when /moto-api/data.json answers, torn down with
//! the test process (PR_SET_PDEATHSIG). Fixture AMIs come from tests/fixtures/moto-amis.json.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parbake::aws::ec2::{Ec2, Endpoint};
use parbake::config::SourceAmi;

use crate::util::repo;

pub struct Moto {
    pub url: String,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

pub fn moto() -> &'static Moto {
    MOTO.get_or_init(start)
}

fn start() -> Moto {
    let bin = repo().join(".venv/bin/moto_server");
    assert!(
        bin.exists(),
        "{} is missing: run `make setup`",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    cmd.args(["-H", "127.0.0.1", "-p", "0"])
        .env("MOTO_ENABLE_AMI_VALIDATION", "true")
        .env(
            "MOTO_AMIS_PATH",
            repo().join("tests/fixtures/moto-amis.json"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; the server dies with the test process.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    // PR_SET_PDEATHSIG fires when the spawning *thread* ends, so spawn from a thread that lives
    // as long as the test process
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("moto-parent".into())
        .spawn(move || {
            tx.send(cmd.spawn()).unwrap();
            loop {
                std::thread::park();
            }
        })
        .unwrap();
    let mut child = rx.recv().unwrap().expect("start moto_server");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("moto_server exited before printing its port")
            .unwrap();
        if let Some(rest) = line.split("Running on http://127.0.0.1:").nth(1) {
            break rest
                .trim()
                .trim_end_matches('/')
                .parse::<u16>()
                .expect("port");
        }
    };
    // keep draining its log so the pipe never fills
    std::thread::spawn(move || for _ in lines {});
    std::mem::forget(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.write_all(b"GET /moto-api/data.json HTTP/1.0\r\n\r\n")?;
            let mut r = String::new();
            s.read_to_string(&mut r)?;
            Ok(r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"))
        });
        if matches!(ok, Ok(true)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto {
        url: format!("http://127.0.0.1:{port}"),
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub async fn ec2(region: &str) -> Ec2 {
    Ec2::connect(
        region,
        &Endpoint {
            url: Some(moto().url.clone()),
            static_credentials: Some(("testing".into(), "testing".into())),
        },
    )
    .await
}

fn debian(name: &str, arch: &str) -> SourceAmi {
    SourceAmi {
        owners: vec!["136693071363".into()],
        name: name.into(),
        architecture: arch.into(),
    }
}

#[test]
fn source_ami_resolution_picks_the_newest_with_a_stable_tie_break() {
    rt().block_on(async {
        let ec2 = ec2("us-east-1").await;
        // three AMIs share the newest CreationDate; an impostor owner has a newer one
        let ami = ec2
            .resolve_source_ami(&debian("debian-12-amd64-*", "x86_64"))
            .await
            .unwrap();
        assert_eq!(ami.id, "ami-0de0b12a7f3c000b2");
        assert_eq!(ami.owner, "136693071363");
        let arm = ec2
            .resolve_source_ami(&debian("debian-12-*", "arm64"))
            .await
            .unwrap();
        assert_eq!(arm.id, "ami-0de0b12a7f3c00a01");
        let err = ec2
            .resolve_source_ami(&debian("debian-13-*", "x86_64"))
            .await
            .unwrap_err();
        let text = parbake::error::Report(&err).to_string();
        assert!(
            text.contains("no available AMI in us-east-1 matches name `debian-13-*`"),
            "{text}"
        );
        assert!(text.contains("hint:"));
    });
}

#[test]
fn layer_lookup_finds_only_amis_tagged_with_that_layer_hash() {
    rt().block_on(async {
        let ec2 = ec2("us-east-1").await;
        let c = &ec2.client;
        let run = c
            .run_instances()
            .image_id("ami-0de0b12a7f3c000b2")
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
            .min_count(1)
            .max_count(1)
            .send()
            .await
            .unwrap();
        let instance = run.instances()[0].instance_id().unwrap().to_string();
        let hash = format!(
            "{:064x}",
            std::process::id() as u128 * 7919 + Instant::now().elapsed().as_nanos()
        );
        let img = c
            .create_image()
            .instance_id(&instance)
            .name(format!("parbake-test-{}", &hash[..12]))
            .send()
            .await
            .unwrap();
        let ami = img.image_id().unwrap().to_string();
        c.create_tags()
            .resources(&ami)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("parbake:layer-hash")
                    .value(&hash)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let found = ec2.layer_amis(&hash).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, ami);
        assert_eq!(found[0].tags["parbake:layer-hash"], hash);
        assert!(ec2.layer_amis(&"0".repeat(64)).await.unwrap().is_empty());
        c.terminate_instances()
            .instance_ids(&instance)
            .send()
            .await
            .unwrap();
    });
}
