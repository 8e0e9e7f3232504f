//! The one way a failed AWS SDK call (EC2 or SSM) becomes words: the service's error code and
//! message, which the SDK parses out of the answer (`ProvideErrorMetadata`), or what kind of
//! failure it was. Never the raw HTTP response: its body is whatever the service sent, and a
//! CreateKeyPair answer holds a private key. So nothing here formats an `SdkError` with `{:?}`
//! or `DisplayErrorContext` (which appends the Debug form, body and all).

use std::error::Error as StdError;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

/// How long a service's message may be in parbake's error (EC2's and SSM's are one sentence).
const MAX_MESSAGE: usize = 400;

/// What went wrong in one SDK call, for `<service> <Operation> in <region> failed: <this>`.
pub fn describe<E>(e: &SdkError<E>) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match e {
        SdkError::ServiceError(s) => service_error(s.err(), s.raw().status().as_u16()),
        SdkError::ResponseError(r) => format!(
            "its answer (HTTP {}) could not be read",
            r.raw().status().as_u16()
        ),
        SdkError::DispatchFailure(d) => match d.as_connector_error() {
            Some(c) => format!("could not reach the service: {}", chain(c)),
            None => "could not reach the service".to_string(),
        },
        SdkError::TimeoutError(_) => "the call timed out".to_string(),
        SdkError::ConstructionFailure(_) => match e.source() {
            Some(s) => format!("the request could not be built: {}", chain(s)),
            None => "the request could not be built".to_string(),
        },
        _ => "failed".to_string(),
    }
}

/// True when the call never reached the service (network, endpoint, timeout): a hint about
/// the endpoint helps there, not one about credentials.
pub fn is_unreachable<E>(e: &SdkError<E>) -> bool {
    matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_))
}

/// True when the service refused the caller rather than the request (credentials, their
/// permissions, the clock), or gave no code at all: a hint about credentials helps there. For
/// any other code (a version limit, a bad value) it would mislead.
pub fn is_about_credentials<E>(e: &SdkError<E>) -> bool
where
    E: ProvideErrorMetadata,
{
    const CODES: [&str; 10] = [
        "AccessDenied",
        "AccessDeniedException",
        "AuthFailure",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "RequestExpired",
    ];
    match e {
        SdkError::ServiceError(_) => e.code().is_none_or(|c| CODES.contains(&c)),
        _ => true,
    }
}

/// The service's code (`UnauthorizedOperation`) and message, and its request id.
fn service_error(e: &impl ProvideErrorMetadata, status: u16) -> String {
    let mut s = match (e.code(), e.message()) {
        (Some(code), Some(m)) => format!("{}: {}", clean(code, 100), clean(m, MAX_MESSAGE)),
        (Some(code), None) => clean(code, 100),
        (None, Some(m)) => format!("HTTP {status}: {}", clean(m, MAX_MESSAGE)),
        // a success status whose answer the SDK could not parse
        (None, None) if (200..300).contains(&status) => {
            format!("its answer (HTTP {status}) could not be read")
        }
        (None, None) => format!("HTTP {status}, with no error code"),
    };
    if let Some(id) = e.meta().extra("aws_request_id") {
        s.push_str(&format!(" (request id {})", clean(id, 100)));
    }
    s
}

/// The Display texts of an error and its sources, each once (never their Debug forms).
fn chain(e: &dyn StdError) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = clean(&err.to_string(), 200);
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// One line of printable text, at most `max` characters, with any PEM block (`-----BEGIN`
/// ...) cut out: a service's message is its own, and may echo what it was sent.
pub fn clean(text: &str, max: usize) -> String {
    let text = match text.find("-----BEGIN") {
        Some(at) => format!("{}<key material removed>", &text[..at]),
        None => text.to_string(),
    };
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_cuts_key_material_control_characters_and_length() {
        assert_eq!(
            clean("bad key -----BEGIN RSA PRIVATE KEY-----\nMIIE", 100),
            "bad key <key material removed>"
        );
        assert_eq!(clean("a\u{1b}[31mb\nc", 100), "a [31mb c");
        assert_eq!(clean("abcdef", 3), "abc…");
    }

    proptest::proptest! {
        /// Whatever a service puts in its message, parbake shows one bounded line without a
        /// PEM block.
        #[test]
        fn clean_is_one_bounded_line_without_key_material(
            before in "\\PC{0,40}",
            after in "(?s).{0,80}",
            pem in proptest::bool::ANY,
            max in 1usize..60,
        ) {
            let text = if pem {
                format!("{before}-----BEGIN RSA PRIVATE KEY-----{after}")
            } else {
                format!("{before}{after}")
            };
            let out = clean(&text, max);
            proptest::prop_assert!(!out.contains("-----BEGIN"));
            proptest::prop_assert!(!out.chars().any(char::is_control));
            proptest::prop_assert!(out.chars().count() <= max + 1);
        }
    }
}
