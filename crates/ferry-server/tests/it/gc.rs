//! `ferry_server::gc::collect`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_server::gc::{GcOptions, collect};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

fn blob_file(root: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    root.join("blobs").join(alg).join(hex)
}

fn options(dry_run: bool, delete_untagged: bool) -> GcOptions {
    GcOptions {
        dry_run,
        delete_untagged,
        grace: Duration::ZERO,
    }
}

/// An image whose layer is `layer` (already pushed) and whose config is new.
async fn image_with_layer(
    server: &Server,
    repo: &str,
    alg: Alg,
    layer: &str,
    seed: u64,
) -> (Vec<u8>, String, String) {
    let config = format!("{{\"seed\":{seed}}}");
    let config_digest = server.push_blob(repo, config.as_bytes(), alg).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": LAYER, "digest": layer, "size": 300}],
    }))
    .unwrap();
    let digest = alg.digest(&manifest);
    (manifest, digest, config_digest)
}

async fn pulls(server: &Server, repo: &str, reference: &str) {
    let response = server
        .get(&format!("/v2/{repo}/manifests/{reference}"))
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{repo}:{reference}");
    let manifest: Value = response.json().await.unwrap();
    let mut digests = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    for layer in manifest["layers"].as_array().unwrap() {
        digests.push(layer["digest"].as_str().unwrap().to_string());
    }
    for digest in digests {
        let response = server.get(&format!("/v2/{repo}/blobs/{digest}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{repo}@{digest}");
        assert_eq!(header(&response, "docker-content-digest"), digest);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_removes_unreferenced_blobs_and_keeps_shared_ones() {
    let server = Server::start().await;
    let root = server.root.clone();
    for (i, alg) in ALGS.into_iter().enumerate() {
        let repo = format!("gc/{i}");
        let seed = 1100 + 10 * i as u64;
        let layer_bytes = random_bytes(300, seed);
        let shared_layer = server.push_blob(&repo, &layer_bytes, alg).await;
        let (a, a_digest, a_config) =
            image_with_layer(&server, &repo, alg, &shared_layer, seed + 1).await;
        let (b, _, b_config) = image_with_layer(&server, &repo, alg, &shared_layer, seed + 2).await;
        server.put_manifest_ok(&repo, &a_digest, MANIFEST, &a).await;
        server.put_manifest_ok(&repo, "a", MANIFEST, &a).await;
        server.put_manifest_ok(&repo, "b", MANIFEST, &b).await;
        // A blob shared with another repository only through a mount.
        let response = server
            .request(
                reqwest::Method::POST,
                &format!("/v2/gc/mounted/blobs/uploads/?mount={a_config}&from={repo}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let (m, _, _) = image_with_layer(&server, "gc/mounted", alg, &a_config, seed + 3).await;
        // Its "layer" is a's config, which it holds via the mount.
        let mut m: Value = serde_json::from_slice(&m).unwrap();
        m["layers"][0]["size"] = json!(format!("{{\"seed\":{}}}", seed + 1).len());
        let m = serde_json::to_vec(&m).unwrap();
        server
            .put_manifest_ok("gc/mounted", &format!("m{i}"), MANIFEST, &m)
            .await;

        // Delete a (both its digest forms).
        let mut forms = vec![a_digest.clone(), sha256(&a)];
        forms.dedup();
        for digest in forms {
            let response = server
                .delete(&format!("/v2/{repo}/manifests/{digest}"))
                .await;
            assert_eq!(response.status(), StatusCode::ACCEPTED);
        }
        // An unreferenced upload (a push that never got its manifest).
        let orphan = server
            .push_blob(&repo, &random_bytes(77, seed + 4), alg)
            .await;

        // A dry run reports but deletes nothing.
        let before = paths(&root);
        let report = collect(&root, &options(true, false)).unwrap();
        assert!(report.blobs.contains(&orphan), "{report:?}");
        assert!(report.blobs.contains(&a_digest), "{report:?}");
        assert!(report.bytes > 0);
        assert_eq!(paths(&root), before);

        let report = collect(&root, &options(false, false)).unwrap();
        assert!(report.blobs.contains(&orphan), "{report:?}");
        assert!(!blob_file(&root, &orphan).exists());
        assert!(!blob_file(&root, &a_digest).exists());
        // a's config: unlinked from `repo`, but kept because gc/mounted uses it.
        assert!(!report.blobs.contains(&a_config), "{report:?}");
        assert!(blob_file(&root, &a_config).exists());
        assert_eq!(
            server
                .head(&format!("/v2/{repo}/blobs/{a_config}"))
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            server
                .head(&format!("/v2/{repo}/blobs/{orphan}"))
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
        // Shared and live content stays; both tagged artifacts still pull.
        assert!(blob_file(&root, &shared_layer).exists());
        assert!(blob_file(&root, &b_config).exists());
        pulls(&server, &repo, "b").await;
        pulls(&server, "gc/mounted", &format!("m{i}")).await;
        // A second run finds nothing more.
        let again = collect(&root, &options(false, false)).unwrap();
        assert!(
            again.blobs.is_empty() && again.manifests.is_empty(),
            "{again:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_delete_untagged() {
    let server = Server::start().await;
    let root = server.root.clone();
    let repo = "gc/untagged";
    let alg = Alg::Sha512;
    let layer = server.push_blob(repo, &random_bytes(300, 1200), alg).await;
    let (tagged, tagged_digest, _) = image_with_layer(&server, repo, alg, &layer, 1201).await;
    let (untagged, untagged_digest, untagged_config) =
        image_with_layer(&server, repo, alg, &layer, 1202).await;
    server
        .put_manifest_ok(repo, &tagged_digest, MANIFEST, &tagged)
        .await;
    server
        .put_manifest_ok(repo, "keep", MANIFEST, &tagged)
        .await;
    server
        .put_manifest_ok(repo, &untagged_digest, MANIFEST, &untagged)
        .await;
    // An untagged referrer of the tagged image, and a tagged index whose
    // (untagged) child must survive.
    let referrer = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MANIFEST, "artifactType": "application/x.sig",
        "config": {"mediaType": CONFIG, "digest": untagged_config, "size": "{\"seed\":1202}".len()},
        "layers": [],
        "subject": {"mediaType": MANIFEST, "digest": sha256(&tagged), "size": tagged.len()},
    }))
    .unwrap();
    let referrer_digest = alg.digest(&referrer);
    server
        .put_manifest_ok(repo, &referrer_digest, MANIFEST, &referrer)
        .await;
    let (child, child_digest, child_config) =
        image_with_layer(&server, repo, alg, &layer, 1203).await;
    server
        .put_manifest_ok(repo, &child_digest, MANIFEST, &child)
        .await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": INDEX,
        "manifests": [{"mediaType": MANIFEST, "digest": child_digest, "size": child.len()}],
    }))
    .unwrap();
    server.put_manifest_ok(repo, "index", INDEX, &index).await;

    // Without delete_untagged nothing of this goes.
    let report = collect(&root, &options(false, false)).unwrap();
    assert!(report.manifests.is_empty(), "{report:?}");
    assert!(report.blobs.is_empty(), "{report:?}");
    // Dry run with delete_untagged: reported, not removed.
    let report = collect(&root, &options(true, true)).unwrap();
    assert!(
        report
            .manifests
            .iter()
            .any(|m| m.ends_with(&untagged_digest)),
        "{report:?}"
    );
    let path = format!("/v2/{repo}/manifests/{untagged_digest}");
    assert_eq!(server.head(&path).await.status(), StatusCode::OK);

    let report = collect(&root, &options(false, true)).unwrap();
    assert!(
        report
            .manifests
            .iter()
            .any(|m| m.ends_with(&untagged_digest)),
        "{report:?}"
    );
    assert_eq!(server.head(&path).await.status(), StatusCode::NOT_FOUND);
    // The untagged sha512 copy of the tagged image goes too (only the
    // sha256 digest is tagged).
    assert_eq!(
        server
            .head(&format!("/v2/{repo}/manifests/{tagged_digest}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // The referrer's config is the untagged image's config: still needed.
    assert!(blob_file(&root, &untagged_config).exists());
    pulls(&server, repo, "keep").await;
    let referrer_path = format!("/v2/{repo}/manifests/{referrer_digest}");
    assert_eq!(server.head(&referrer_path).await.status(), StatusCode::OK);
    let response = server
        .get(&format!("/v2/{repo}/referrers/{}", sha256(&tagged)))
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["manifests"].as_array().unwrap().len(), 1);
    // The index's child stays.
    pulls(&server, repo, &child_digest).await;
    assert!(blob_file(&root, &child_config).exists());
    assert_eq!(
        server
            .get(&format!("/v2/{repo}/manifests/index"))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_in_repositories_without_manifests() {
    let server = Server::start().await;
    let root = server.root.clone();
    // Blobs pushed, no manifest ever: garbage once older than the grace.
    let orphan = server
        .push_blob("gc/blobonly", b"orphan blob", Alg::Sha256)
        .await;
    let report = collect(&root, &options(false, false)).unwrap();
    assert!(report.blobs.contains(&orphan), "{report:?}");
    assert!(!blob_file(&root, &orphan).exists());
    let path = format!("/v2/gc/blobonly/blobs/{orphan}");
    assert_eq!(server.head(&path).await.status(), StatusCode::NOT_FOUND);
    // No dangling link is left: mounting from there falls back to an
    // upload (202), and the blob can be pushed again.
    let response = server
        .request(
            reqwest::Method::POST,
            &format!("/v2/gc/other/blobs/uploads/?mount={orphan}&from=gc/blobonly"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    server
        .push_blob("gc/blobonly", b"orphan blob", Alg::Sha256)
        .await;
    assert_eq!(
        server.get(&path).await.bytes().await.unwrap(),
        "orphan blob"
    );
    // With a long grace, a fresh upload is left alone.
    let report = collect(
        &root,
        &GcOptions {
            dry_run: false,
            delete_untagged: true,
            grace: Duration::from_secs(3600),
        },
    )
    .unwrap();
    assert!(report.blobs.is_empty() && report.links == 0, "{report:?}");
    assert!(blob_file(&root, &orphan).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn mount_of_a_blob_whose_content_is_gone_falls_back_to_an_upload() {
    let server = Server::start().await;
    let digest = server
        .push_blob("lost/from", b"lost content", Alg::Sha256)
        .await;
    std::fs::remove_file(blob_file(&server.root, &digest)).unwrap();
    for query in [
        format!("mount={digest}&from=lost/from"),
        format!("mount={digest}"),
    ] {
        let response = server
            .request(
                reqwest::Method::POST,
                &format!("/v2/lost/to/blobs/uploads/?{query}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{query}");
        assert!(location(&response).starts_with("/v2/lost/to/blobs/uploads/"));
    }
}
