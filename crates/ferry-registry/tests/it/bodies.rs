//! Bodies a registry makes as long as it likes: error envelopes, token
//! responses, referrers pages and listings. Each is read within its limit
//! and the connection dropped, which the server sees as bytes it never got
//! to send.

use bytes::Bytes;
use ferry_registry::referrers::list::{MAX_REFERRERS, list_referrers};
use ferry_registry::{ClientError, Endpoint};
use oci_spec::distribution::ErrorCode;

use crate::common::*;
use crate::hostile::{Auth, Hostile, HugeBody, noise};

const MIB: u64 = 1024 * 1024;

/// What a huge body is: far more than any limit, and than socket buffers.
const HUGE: u64 = 512 * MIB;

/// Bytes the server may have handed on before it saw the client go: the
/// limit plus what loopback socket buffers hold.
const SENT_AT_MOST: u64 = 64 * MIB;

fn huge(path_contains: &str, status: u16, prefix: &'static [u8], with_length: bool) -> HugeBody {
    HugeBody {
        path_contains: path_contains.into(),
        status,
        content_type: "application/json".into(),
        prefix: Bytes::from_static(prefix),
        size: HUGE,
        with_length,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_error_body_is_cut_off_and_its_status_and_code_still_reported() {
    for with_length in [true, false] {
        let registry = Hostile::start("127.0.0.1").await;
        registry.seed("m", "v1", &[("w.bin", noise(1000, 1))]);
        let prefix = br#"{"errors":[{"code":"DENIED","message":""#;
        registry.with(|s| s.faults.huge_body = Some(huge("/manifests/", 403, prefix, with_length)));
        let (_dir, store) = store();
        let error = pull(&client(), &store, &registry.reference("m:v1"))
            .await
            .expect_err("a 403 fails the pull");
        match &error {
            ClientError::Status {
                status: 403,
                body: Some(body),
                ..
            } => assert!(body.code.is(&ErrorCode::Denied), "{error}"),
            other => panic!("expected the 403 with its code: {other:?}"),
        }
        let sent = registry.huge_sent();
        assert!(
            sent < SENT_AT_MOST,
            "the client read on: {sent} of {HUGE} bytes sent"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_token_response_is_refused_unread() {
    for with_length in [true, false] {
        let registry = Hostile::start("127.0.0.1").await;
        registry.seed("m", "v1", &[("w.bin", noise(1000, 2))]);
        registry.with(|s| {
            s.auth = Auth::Bearer {
                service: "hostile".into(),
            };
            s.faults.huge_body = Some(huge("/token", 200, br#"{"token":""#, with_length));
        });
        let (_dir, store) = store();
        let error = pull(&client(), &store, &registry.reference("m:v1"))
            .await
            .expect_err("no token, no pull");
        assert!(
            error.to_string().contains("token response") && error.to_string().contains("larger"),
            "{error}"
        );
        let sent = registry.huge_sent();
        assert!(
            sent < SENT_AT_MOST,
            "the client read on: {sent} of {HUGE} bytes sent"
        );
        assert!(store.entries().unwrap().is_empty());
    }
}

fn endpoint(registry: &Hostile) -> Endpoint {
    Endpoint {
        registry: registry.registry(),
        repository: "m".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_pages_without_end_stop_at_the_total_limit() {
    let registry = Hostile::start("127.0.0.1").await;
    let per_page = 2_000;
    registry.with(|s| s.faults.endless_referrers = Some(per_page));
    let subject = digest(&crate::hostile::sha256(b"subject"));
    let error = list_referrers(&client(), &endpoint(&registry), &subject, None)
        .await
        .expect_err("an endless listing is refused");
    assert!(
        error
            .to_string()
            .contains(&format!("more than {MAX_REFERRERS}")),
        "{error}"
    );
    let pages = registry.requests("GET", "/referrers/").len();
    assert!(
        pages <= MAX_REFERRERS / per_page + 1,
        "{pages} pages read for at most {MAX_REFERRERS} referrers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_referrers_page_is_refused_unread() {
    let registry = Hostile::start("127.0.0.1").await;
    registry.with(|s| {
        s.faults.huge_body = Some(HugeBody {
            content_type: ferry_spec::media::MEDIA_TYPE_IMAGE_INDEX.into(),
            ..huge(
                "/referrers/",
                200,
                br#"{"schemaVersion":2,"manifests":["#,
                false,
            )
        })
    });
    let subject = digest(&crate::hostile::sha256(b"subject"));
    let error = list_referrers(&client(), &endpoint(&registry), &subject, None)
        .await
        .expect_err("a page past the document limit is refused");
    assert!(
        matches!(error, ClientError::Integrity { .. }) && error.to_string().contains("larger"),
        "{error:?}"
    );
    let sent = registry.huge_sent();
    assert!(sent < SENT_AT_MOST, "{sent} of {HUGE} bytes sent");
}
