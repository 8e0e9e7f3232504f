//! What AWS errors show, against a labelled local stand-in for EC2 and SSM.

use std::io::{BufRead, BufReader, Read, Write};

use parbake::targets::aws::ec2::{Ec2, Endpoint};

use super::support::*;

/// A local stand-in for EC2 and SSM (not moto, whose answers carry nothing worth hiding): each
/// request must name the action in `answers` (a substring of its head and body), and gets
/// that raw HTTP answer; anything else gets a 400 that fails the test.
fn stand_in(answers: Vec<(&'static str, String)>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let request = head + &String::from_utf8_lossy(&body);
            let answer = answers
                .iter()
                .find(|(want, _)| request.contains(want))
                .map(|(_, a)| a.clone())
                .unwrap_or_else(|| {
                    http_answer(400, "text/xml", "<Response><Errors><Error><Code>StandInUnexpectedRequest</Code><Message>the stand-in got a request it does not expect</Message></Error></Errors></Response>")
                });
            let _ = conn.write_all(answer.as_bytes());
        }
    });
    url
}

fn http_answer(status: u16, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// EC2's documented error answer, with one more element that only the raw body shows.
fn ec2_error(code: &str, message: &str) -> String {
    http_answer(400, "text/xml", &format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>req-standin-1</RequestID><Detail>BODYONLY7f3a</Detail></Response>"
    ))
}

/// AWS errors show the operation, the service's error code and message, never the raw
/// answer: not a CreateKeyPair answer's private key, not the rest of an error body, not a
/// PEM block inside a message. Against a labelled stand-in (see [`stand_in`]).
#[test]
fn aws_errors_show_code_and_message_never_the_raw_answer_or_key_material() {
    let shown = errors_from_a_stand_in_with_key_material();
    for t in &shown {
        assert!(
            !t.contains("KEYMATERIAL") && !t.contains("PRIVATE KEY") && !t.contains("BODYONLY"),
            "{t}"
        );
        assert!(!t.contains("StandInUnexpectedRequest"), "{t}");
        assert_eq!(
            t.lines().filter(|l| !l.starts_with("hint: ")).count(),
            1,
            "{t}"
        );
    }
    assert!(
        shown[0].starts_with(
            "error: EC2 CreateKeyPair in us-east-1 failed: its answer (HTTP 200) could not be read"
        ),
        "{}",
        shown[0]
    );
    assert!(
        shown[1].starts_with("error: EC2 DescribeKeyPairs in us-east-1 failed: UnauthorizedOperation: You are not authorized to perform this operation."),
        "{}",
        shown[1]
    );
    assert!(
        shown[2].contains("InvalidKeyPair.Format: bad key <key material removed>"),
        "{}",
        shown[2]
    );
    assert!(
        shown[3].starts_with("error: SSM PutParameter in us-east-1 failed: ParameterMaxVersionLimitExceeded: too many versions"),
        "{}",
        shown[3]
    );
    an_endpoint_with_nothing_listening_is_named_not_the_credentials();
}

/// The error text of an error.
fn text(e: parbake::error::Error) -> String {
    parbake::error::Report(&e).to_string()
}

fn endpoint(url: String) -> Endpoint {
    Endpoint {
        url: Some(url),
        static_credentials: Some(("testing".into(), "testing".into())),
    }
}

/// The errors four calls show against a stand-in whose answers carry a private key and more
/// than an error's code and message: CreateKeyPair (unreadable answer), DescribeKeyPairs
/// twice (refused; a key in the message), SSM PutParameter.
fn errors_from_a_stand_in_with_key_material() -> Vec<String> {
    const KEY: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEstandinKEYMATERIAL7f3a\n-----END RSA PRIVATE KEY-----";
    let url = stand_in(vec![
        // a CreateKeyPair answer, with its key, that does not parse (a bad XML escape)
        (
            "Action=CreateKeyPair",
            http_answer(200, "text/xml", &format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CreateKeyPairResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r1</requestId><keyName>parbake-lock-x</keyName><keyFingerprint>aa&bogus;</keyFingerprint><keyMaterial>{KEY}</keyMaterial><keyPairId>key-1</keyPairId></CreateKeyPairResponse>"
            )),
        ),
        (
            "Filter.1.Value.1=parbake-lock-body",
            ec2_error("UnauthorizedOperation", "You are not authorized to perform this operation."),
        ),
        (
            "Filter.1.Value.1=parbake-lock-%2A",
            ec2_error("InvalidKeyPair.Format", &format!("bad key {KEY}")),
        ),
        (
            "AmazonSSM.PutParameter",
            http_answer(400, "application/x-amz-json-1.1", "{\"__type\":\"com.amazonaws.ssm#ParameterMaxVersionLimitExceeded\",\"message\":\"too many versions\",\"Detail\":\"BODYONLY7f3a\"}"),
        ),
    ]);
    let endpoint = endpoint(url);
    rt().block_on(async {
        let ec2 = Ec2::connect("us-east-1", &endpoint).await;
        let ssm = parbake::targets::aws::ssm::Ssm::connect("us-east-1", &endpoint).await;
        vec![
            text(ec2.try_claim("parbake-lock-x", &[]).await.unwrap_err()),
            text(ec2.claim_tags("parbake-lock-body").await.unwrap_err()),
            text(ec2.expired_claims(0).await.unwrap_err()),
            text(ssm.put_ami("/parbake/x", "ami-1").await.unwrap_err()),
        ]
    })
}

/// Nothing listening: the endpoint is named, not the credentials.
fn an_endpoint_with_nothing_listening_is_named_not_the_credentials() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let t = rt().block_on(async {
        let ec2 = Ec2::connect("us-east-1", &endpoint(url)).await;
        text(ec2.claim_tags("parbake-lock-y").await.unwrap_err())
    });
    assert!(
        t.contains("EC2 DescribeKeyPairs in us-east-1 failed: could not reach the service")
            && t.contains("PARBAKE_EC2_ENDPOINT")
            && !t.contains("DispatchFailure"),
        "{t}"
    );
}

/// When putting a failed publish back fails too, the error says exactly what moved (template,
/// the version now the default, the one before) and gives the commands that revert it or
/// finish it. Against a labelled stand-in for EC2 (see [`stand_in`]) that refuses
/// ModifyLaunchTemplate and DeleteLaunchTemplate.
#[test]
fn an_undo_that_fails_says_what_moved_and_the_commands_that_revert_or_finish_it() {
    use parbake::targets::aws::undo::{put_parameter_command, Moved};
    let refused = || {
        ec2_error(
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        )
    };
    let url = stand_in(vec![
        ("Action=ModifyLaunchTemplate&", refused()),
        ("Action=DeleteLaunchTemplate&", refused()),
    ]);
    let endpoint = Endpoint {
        url: Some(url),
        static_credentials: Some(("testing".into(), "testing".into())),
    };
    let moved = Moved {
        command: "publish",
        stack: "web".into(),
        region: "us-east-1".into(),
        template: "web-fleet".into(),
        template_id: "lt-0abc".into(),
        created_template: false,
        created_version: Some(5),
        default_now: 5,
        default_before: Some(4),
        finish: Some(put_parameter_command(
            "us-east-1",
            "/parbake/web/ami",
            "ami-0123",
        )),
    };
    let undo = |m: Moved| {
        rt().block_on(async {
            let ec2 = Ec2::connect("us-east-1", &endpoint).await;
            let failure = parbake::error::Error::user("SSM PutParameter in us-east-1 failed: X");
            parbake::error::Report(&m.undo(&ec2, failure).await).to_string()
        })
    };
    let text = undo(moved.clone());
    for want in [
        "error: SSM PutParameter in us-east-1 failed: X\nundoing the publish of stack web failed too: EC2 ModifyLaunchTemplate in us-east-1 failed: UnauthorizedOperation",
        "what moved: launch template web-fleet (lt-0abc) in us-east-1: version 5 is the default now; version 4 was the default before",
        "hint: revert it: aws ec2 modify-launch-template --region us-east-1 --launch-template-id lt-0abc --default-version 4",
        "hint: then remove the version it added: aws ec2 delete-launch-template-versions --region us-east-1 --launch-template-id lt-0abc --versions 5",
        "hint: or finish it instead: aws ssm put-parameter --region us-east-1 --name /parbake/web/ami --value ami-0123 --type String --data-type aws:ec2:image --overwrite",
    ] {
        assert!(text.contains(want), "{want}\nnot in:\n{text}");
    }
    // a template the publish created, which cannot be deleted
    let text = undo(Moved {
        created_template: true,
        created_version: Some(1),
        default_now: 1,
        default_before: None,
        ..moved
    });
    for want in [
        "what moved: launch template web-fleet (lt-0abc) in us-east-1 was created by this publish; its version 1 is the default",
        "hint: revert it: aws ec2 delete-launch-template --region us-east-1 --launch-template-id lt-0abc",
        "hint: or finish it instead: aws ssm put-parameter",
    ] {
        assert!(text.contains(want), "{want}\nnot in:\n{text}");
    }
}
