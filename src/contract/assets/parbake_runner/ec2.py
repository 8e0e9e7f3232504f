"""The status tag: this EC2 instance tagged parbake:status, CreateTags signed (SigV4) with the
instance profile's credentials from IMDSv2. Best effort: it never changes the launch result."""

import hashlib
import hmac
import json
import os
import time
import urllib.parse
import urllib.request

from .secret import RESOLVED, redact
from .status import console

IMDS = os.environ.get("PARBAKE_IMDS", "http://169.254.169.254")


def sigv4_headers(method, url, region, service, body, key_id, secret, token=None, when=None):
    """AWS Signature Version 4 headers for a request with a form body (EC2's query API)."""
    amzdate = time.strftime("%Y%m%dT%H%M%SZ", when or time.gmtime())
    date = amzdate[:8]
    u = urllib.parse.urlsplit(url)
    headers = {
        "content-type": "application/x-www-form-urlencoded; charset=utf-8",
        "host": u.netloc,
        "x-amz-date": amzdate,
    }
    if token:
        headers["x-amz-security-token"] = token
    signed = ";".join(sorted(headers))
    canonical = canonical_request(method, u, headers, signed, body)
    scope = "%s/%s/%s/aws4_request" % (date, region, service)
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
        % (key_id, scope, signed, signature)
    )
    return headers


def canonical_request(method, u, headers, signed, body):
    """SigV4's canonical request: method, path, sorted query, headers, signed names, body hash."""
    query = "&".join(
        "%s=%s" % (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~"))
        for k, v in sorted(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
    )
    return "\n".join(
        [
            method,
            urllib.parse.quote(u.path or "/", safe="/-_.~"),
            query,
            "".join("%s:%s\n" % (k, " ".join(headers[k].split())) for k in sorted(headers)),
            signed,
            hashlib.sha256(body).hexdigest(),
        ]
    )


def imds_reader():
    """A reader of IMDSv2's meta-data paths, with a session token."""
    request = urllib.request.Request(
        IMDS + "/latest/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"},
    )
    token = urllib.request.urlopen(request, timeout=2).read().decode()

    def imds(path):
        req = urllib.request.Request(
            IMDS + "/latest/meta-data/" + path, headers={"X-aws-ec2-metadata-token": token}
        )
        return urllib.request.urlopen(req, timeout=2).read().decode()

    return imds


def tag_body(instance, status):
    """The CreateTags form: parbake:status, and parbake:status-detail (redacted, at most 255)."""
    failed = [r["name"] for r in status["roles"] if r["status"] == "failed"]
    detail = "%s%s total=%.1fs" % (
        status["state"],
        (" role=" + failed[0]) if failed else "",
        status["duration_s"] or 0,
    )
    form = {
        "Action": "CreateTags",
        "Version": "2016-11-15",
        "ResourceId.1": instance,
        "Tag.1.Key": "parbake:status",
        "Tag.1.Value": status["state"],
        "Tag.2.Key": "parbake:status-detail",
        "Tag.2.Value": redact(detail, RESOLVED)[:255],
    }
    return urllib.parse.urlencode(sorted(form.items())).encode()


def tag_instance(status):
    """Tags this EC2 instance parbake:status (and -detail). Never changes the launch result."""
    try:
        imds = imds_reader()
        instance = imds("instance-id")
        region = imds("placement/region")
        roles = imds("iam/security-credentials/").split()
        if not roles:
            raise RuntimeError("the instance has no instance profile")
        creds = json.loads(imds("iam/security-credentials/" + roles[0]))
        endpoint = (
            os.environ.get("PARBAKE_EC2_ENDPOINT") or "https://ec2.%s.amazonaws.com/" % region
        )
        body = tag_body(instance, status)
        key = (creds["AccessKeyId"], creds["SecretAccessKey"], creds.get("Token"))
        headers = sigv4_headers("POST", endpoint, region, "ec2", body, *key)
        request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
        urllib.request.urlopen(request, timeout=10).read()
        console("parbake: tagged instance %s parbake:status=%s" % (instance, status["state"]))
    except Exception as e:  # IAM may not allow it, or this is not EC2: the result stands
        console(
            "parbake: could not tag the instance with its status (%s); status.json and "
            "this console line are the record" % redact(str(e), RESOLVED)
        )
