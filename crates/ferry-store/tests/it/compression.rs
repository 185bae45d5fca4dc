//! Compressed layers: round trips for every category and encoding,
//! determinism across zstd worker counts, per-file choices, layers written
//! by other tools, and every reader's refusals (bombs, truncation, a
//! diffId that does not match) with nothing written.

use std::io::{self, Read, Write};
use std::path::Path;

use ferry_spec::digest::sha256_digest;
use ferry_spec::media::{self, Category, Encoding};
use ferry_spec::oci::{Descriptor, Digest, MediaType};
use ferry_store::Store;
use ferry_store::compress::{CompressMode, CompressOptions};
use ferry_store::decompress::Limits;
use ferry_store::extract::{self, ExtractOptions};
use ferry_store::pack::PackOptions;
use serde_json::Value;

use crate::common::{self, TestDir};

fn options(mode: CompressMode, weights: bool, threads: u32) -> PackOptions {
    PackOptions {
        compress: CompressOptions {
            mode,
            weights,
            min_saving_percent: 0,
            threads,
            ..CompressOptions::default()
        },
        ..PackOptions::default()
    }
}

/// Repetitive text, large enough for several zstd jobs.
fn big_text(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 64);
    let mut i = 0u64;
    while out.len() < bytes {
        writeln!(
            out,
            "{{\"id\":{i},\"text\":\"token_{} value {}\"}}",
            i % 997,
            (i * 7) % 1013
        )
        .expect("writing to a vec");
        i += 1;
    }
    out
}

/// Incompressible bytes (xorshift).
fn noise(bytes: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..bytes)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn decompressed(encoding: Encoding, blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ferry_store::decompress::decoder(encoding, blob, &Limits::default())
        .expect("decoder")
        .read_to_end(&mut out)
        .expect("decompressing");
    out
}

fn encoding_of(layer: &Descriptor) -> (Category, Encoding) {
    media::parse_layer_media_type(layer.media_type().as_ref())
        .unwrap_or_else(|| panic!("not a modelpack layer: {}", layer.media_type()))
}

#[test]
fn every_category_round_trips_with_every_encoding() {
    for (mode, expected) in [
        (CompressMode::None, Encoding::Raw),
        (CompressMode::Gzip, Encoding::TarGzip),
        (CompressMode::Zstd, Encoding::TarZstd),
    ] {
        let t = TestDir::new();
        let model = common::small_model(&t.join("model"));
        let store = t.store("store");
        let name = "compress:every";
        common::pack_ok(&store, &model, name, &options(mode, true, 2));
        let layers = common::layers(&store, name);
        let config = common::config_json(&store, name);
        let diff_ids = config["modelfs"]["diffIds"].as_array().expect("diffIds");
        assert_eq!(diff_ids.len(), layers.len());
        let mut categories = std::collections::BTreeSet::new();
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            let (category, encoding) = encoding_of(layer);
            categories.insert(category.name());
            // The tiny weight is zero-padded: its sample saves enough.
            assert_eq!(encoding, expected, "{mode:?}: layer {}", layer.digest());
            let blob = std::fs::read(store.blob_path(layer.digest())).expect("blob");
            let uncompressed = decompressed(encoding, &blob);
            assert_eq!(
                diff_id.as_str(),
                Some(sha256_digest(&uncompressed).to_string().as_str()),
                "{mode:?}: diffId is the uncompressed digest"
            );
            if expected != Encoding::Raw {
                assert_ne!(diff_id.as_str(), Some(layer.digest().to_string().as_str()));
            }
        }
        assert_eq!(categories.len(), 5, "the fixture has every category");
        let out = t.join("out");
        extract::extract(&store, name, &out, &ExtractOptions::default())
            .unwrap_or_else(|e| panic!("{mode:?}: extracting: {e}"));
        let source = common::files_only(common::tree_following_links(&model));
        let result = common::files_only(common::tree_following_links(&out));
        assert_eq!(result, source, "{mode:?}: extracted tree differs");
    }
}

#[test]
fn auto_compresses_text_and_keeps_weights_raw() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    common::pack_ok(
        &store,
        &model,
        "compress:auto",
        &options(CompressMode::Auto, false, 0),
    );
    for layer in common::layers(&store, "compress:auto") {
        let (category, encoding) = encoding_of(&layer);
        let expected = if category == Category::Weight {
            Encoding::Raw
        } else {
            Encoding::TarZstd
        };
        assert_eq!(encoding, expected, "{}", category.name());
    }
}

#[test]
fn incompressible_weights_stay_raw_under_the_minimum_saving() {
    let t = TestDir::new();
    let model = t.join("model");
    common::write_file(&model, "noise.safetensors", &noise(9 << 20, 7), 0o644);
    // Half the bytes zero (like bf16 exponents): compressible, but far
    // below the 100:1 bomb limit.
    let half: Vec<u8> = noise(9 << 20, 3)
        .into_iter()
        .enumerate()
        .map(|(i, b)| if i % 2 == 0 { 0 } else { b })
        .collect();
    common::write_file(&model, "zeros.safetensors", &half, 0o644);
    let store = t.store("store");
    let mut opts = options(CompressMode::Zstd, true, 0);
    opts.compress.min_saving_percent = 5;
    common::pack_ok(&store, &model, "compress:weights", &opts);
    let layers = common::layers(&store, "compress:weights");
    let noise_layer = common::layer_at(&layers, "noise.safetensors");
    let zeros_layer = common::layer_at(&layers, "zeros.safetensors");
    assert_eq!(encoding_of(noise_layer).1, Encoding::Raw);
    assert_eq!(encoding_of(zeros_layer).1, Encoding::TarZstd);
    let out = t.join("out");
    extract::extract(&store, "compress:weights", &out, &ExtractOptions::default())
        .expect("extracting");
    assert_eq!(
        common::files_only(common::tree_following_links(&out)),
        common::files_only(common::tree_following_links(&model))
    );
}

#[test]
fn output_is_identical_for_1_2_and_4_zstd_workers_and_across_packs() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    common::write_file(&model, "data/big.jsonl", &big_text(40 << 20), 0o644);
    for mode in [CompressMode::Zstd, CompressMode::Gzip] {
        let mut digests = Vec::new();
        for (i, threads) in [1, 2, 4, 4].into_iter().enumerate() {
            let store = t.store(&format!("store-{mode:?}-{i}"));
            let packed = common::pack_ok(
                &store,
                &model,
                "compress:det",
                &options(mode, true, threads),
            );
            digests.push(packed.manifest_digest.to_string());
        }
        assert!(
            digests.windows(2).all(|w| w[0] == w[1]),
            "{mode:?}: manifest digests differ: {digests:?}"
        );
    }
}

/// A tar holding `files` (path, bytes).
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, path, *bytes)
            .expect("appending");
    }
    builder.into_inner().expect("finishing tar")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(bytes, 3).expect("zstd")
}

/// A tar with one `size`-byte file of zeros, compressed while streamed.
fn zero_bomb(encoding: Encoding, size: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    let data = io::repeat(0).take(size);
    match encoding {
        Encoding::TarGzip => {
            let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let mut builder = tar::Builder::new(encoder);
            builder
                .append_data(&mut header, "zeros.bin", data)
                .expect("bomb");
            builder.into_inner().expect("bomb").finish().expect("bomb")
        }
        _ => {
            let encoder = zstd::stream::write::Encoder::new(Vec::new(), 19).expect("bomb");
            let mut builder = tar::Builder::new(encoder);
            builder
                .append_data(&mut header, "zeros.bin", data)
                .expect("bomb");
            builder.into_inner().expect("bomb").finish().expect("bomb")
        }
    }
}

/// Stores a one-layer artifact. With `diff_id`, the config is a ModelPack
/// config naming it; without, the config is the empty descriptor.
fn put_layer(
    store: &Store,
    name: &str,
    blob: &[u8],
    media_type: &str,
    annotations: &[(&str, &str)],
    diff_id: Option<&Digest>,
) {
    let digest = store.put_document(blob).expect("storing layer");
    let mut layer = serde_json::json!({
        "mediaType": media_type,
        "digest": digest.to_string(),
        "size": blob.len(),
    });
    if !annotations.is_empty() {
        layer["annotations"] = Value::Object(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect(),
        );
    }
    let (config_type, config_bytes, artifact_type) = match diff_id {
        Some(id) => (
            media::MEDIA_TYPE_MODEL_CONFIG,
            serde_json::to_vec(&serde_json::json!({
                "descriptor": {"name": "hand-made"},
                "config": {},
                "modelfs": {"type": "layers", "diffIds": [id.to_string()]},
            }))
            .expect("config"),
            media::ARTIFACT_TYPE_MODEL,
        ),
        None => (
            "application/vnd.oci.empty.v1+json",
            b"{}".to_vec(),
            "application/vnd.example.test",
        ),
    };
    put_manifest(
        store,
        name,
        layer,
        (config_type, &config_bytes),
        Some(artifact_type),
    );
}

/// Stores a one-layer manifest with the config `(media type, bytes)`,
/// named `name`.
fn put_manifest(
    store: &Store,
    name: &str,
    layer: Value,
    (config_type, config_bytes): (&str, &[u8]),
    artifact_type: Option<&str>,
) {
    let config_digest = store.put_document(config_bytes).expect("config");
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::MEDIA_TYPE_IMAGE_MANIFEST,
        "config": {"mediaType": config_type, "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": [layer],
    });
    if let Some(artifact_type) = artifact_type {
        manifest["artifactType"] = Value::from(artifact_type);
    }
    let bytes = serde_json::to_vec(&manifest).expect("manifest");
    let digest = store.put_document(&bytes).expect("manifest");
    let descriptor = Descriptor::new(MediaType::ImageManifest, bytes.len() as u64, digest);
    store
        .set_reference(&common::reference(name), &descriptor)
        .expect("naming");
}

fn assert_refused_with_nothing_written(store: &Store, name: &str, parent: &Path, needle: &str) {
    let out = parent.join("out");
    let err = extract::extract(store, name, &out, &ExtractOptions::default())
        .expect_err("extraction must be refused");
    let message = err.to_string();
    assert!(
        message.contains(needle),
        "{name}: unexpected error: {message}"
    );
    assert!(!out.exists(), "{name}: the target was created");
    assert!(
        common::entries_with_prefix(parent, ".ferry-extract-").is_empty(),
        "{name}: staging left behind"
    );
}

#[test]
fn gzip_and_zstd_bombs_stop_at_the_limit_with_nothing_written() {
    let t = TestDir::new();
    let store = t.store("store");
    for (encoding, media_type) in [
        (
            Encoding::TarGzip,
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        (
            Encoding::TarZstd,
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    ] {
        let bomb = zero_bomb(encoding, 1 << 30);
        assert!(bomb.len() < (1 << 30) / 100, "the bomb must exceed 100:1");
        let name = format!("bomb:{}", encoding.suffix().replace('+', "-"));
        put_layer(&store, &name, &bomb, media_type, &[], None);
        let parent = t.join(name.replace(':', "-"));
        std::fs::create_dir_all(&parent).expect("parent");
        assert_refused_with_nothing_written(&store, &name, &parent, "decompression bomb");
    }
}

#[test]
fn the_absolute_limit_applies_even_within_the_ratio() {
    let t = TestDir::new();
    let text = big_text(4 << 20);
    let tar = tar_of(&[("data.jsonl", &text)]);
    let blob = zstd(&tar);
    let digest = sha256_digest(&blob);
    let layer = Descriptor::new(
        MediaType::Other("application/vnd.oci.image.layer.v1.tar+zstd".into()),
        blob.len() as u64,
        digest,
    );
    let limits = Limits {
        max_ratio: 1_000_000,
        max_unpacked: 2 << 20,
        ..Limits::default()
    };
    let root = t.join("root");
    std::fs::create_dir_all(&root).expect("root");
    let err = extract::place_layer_verified(&layer, &blob[..], &root, None, &limits)
        .expect_err("over the absolute limit");
    assert!(err.to_string().contains("decompression bomb"), "{err}");
    let generous = Limits {
        max_ratio: 1_000_000,
        max_unpacked: 64 << 20,
        ..Limits::default()
    };
    extract::place_layer_verified(
        &layer,
        &blob[..],
        &root,
        Some(&sha256_digest(&tar)),
        &generous,
    )
    .expect("within the limits");
    assert_eq!(std::fs::read(root.join("data.jsonl")).expect("file"), text);
}

#[test]
fn truncated_compressed_layers_are_refused_with_nothing_written() {
    let t = TestDir::new();
    let store = t.store("store");
    let text = big_text(1 << 20);
    let tar = tar_of(&[("data.jsonl", &text)]);
    let diff_id = sha256_digest(&tar);
    for (encoding, blob) in [
        (Encoding::TarGzip, gzip(&tar)),
        (Encoding::TarZstd, zstd(&tar)),
    ] {
        let cut = &blob[..blob.len() / 2];
        let media_type = media::layer_media_type(Category::Dataset, encoding);
        let name = format!("cut:{}", encoding.suffix().replace('+', "-"));
        put_layer(&store, &name, cut, &media_type, &[], Some(&diff_id));
        let parent = t.join(name.replace(':', "-"));
        std::fs::create_dir_all(&parent).expect("parent");
        assert_refused_with_nothing_written(&store, &name, &parent, "layer");
    }
}

#[test]
fn a_diff_id_that_does_not_match_is_refused_with_nothing_written() {
    let t = TestDir::new();
    let store = t.store("store");
    let tar = tar_of(&[("config.json", b"{\"a\":1}\n")]);
    let wrong = sha256_digest(b"something else");
    for (encoding, blob) in [
        (Encoding::TarGzip, gzip(&tar)),
        (Encoding::TarZstd, zstd(&tar)),
    ] {
        let media_type = media::layer_media_type(Category::WeightConfig, encoding);
        let name = format!("diff:{}", encoding.suffix().replace('+', "-"));
        put_layer(&store, &name, &blob, &media_type, &[], Some(&wrong));
        let parent = t.join(name.replace(':', "-"));
        std::fs::create_dir_all(&parent).expect("parent");
        assert_refused_with_nothing_written(&store, &name, &parent, "diffIds");
        // With the right diffId the same blob extracts.
        let good = format!("{name}-good");
        put_layer(
            &store,
            &good,
            &blob,
            &media_type,
            &[],
            Some(&sha256_digest(&tar)),
        );
        extract::extract(
            &store,
            &good,
            &parent.join("ok"),
            &ExtractOptions::default(),
        )
        .expect("right diffId");
        assert_eq!(
            std::fs::read(parent.join("ok/config.json")).expect("file"),
            b"{\"a\":1}\n"
        );
    }
}

#[test]
fn layers_compressed_by_other_tools_are_read() {
    let t = TestDir::new();
    let store = t.store("store");
    let cases: [(&str, Encoding); 6] = [
        (
            "application/vnd.oci.image.layer.v1.tar+gzip",
            Encoding::TarGzip,
        ),
        (
            "application/vnd.oci.image.layer.v1.tar+zstd",
            Encoding::TarZstd,
        ),
        (
            "application/vnd.kitops.modelkit.model.v1.tar+gzip",
            Encoding::TarGzip,
        ),
        (
            "application/vnd.kitops.modelkit.docs.v1.tar+zstd",
            Encoding::TarZstd,
        ),
        (
            "application/vnd.cnai.model.weight.v1.tar+gzip",
            Encoding::TarGzip,
        ),
        (
            "application/vnd.cnai.model.doc.v1.tar+zstd",
            Encoding::TarZstd,
        ),
    ];
    for (i, (media_type, encoding)) in cases.into_iter().enumerate() {
        let text = format!("file {i}\n");
        let tar = tar_of(&[("dir/file.txt", text.as_bytes())]);
        let blob = match encoding {
            Encoding::TarGzip => gzip(&tar),
            _ => zstd(&tar),
        };
        let name = format!("foreign:{i}");
        put_layer(&store, &name, &blob, media_type, &[], None);
        let out = t.join(format!("out-{i}"));
        extract::extract(&store, &name, &out, &ExtractOptions::default())
            .unwrap_or_else(|e| panic!("{media_type}: {e}"));
        assert_eq!(
            std::fs::read_to_string(out.join("dir/file.txt")).expect("file"),
            text,
            "{media_type}"
        );
    }
}

/// Stores a one-layer container image: an OCI image config whose
/// `rootfs.diff_ids` names `diff_id`.
fn put_image_layer(store: &Store, name: &str, blob: &[u8], media_type: &str, diff_id: &Digest) {
    let layer_digest = store.put_document(blob).expect("storing layer");
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    }))
    .expect("config");
    let layer = serde_json::json!({
        "mediaType": media_type,
        "digest": layer_digest.to_string(),
        "size": blob.len(),
    });
    put_manifest(
        store,
        name,
        layer,
        (media::MEDIA_TYPE_IMAGE_CONFIG, &config),
        None,
    );
}

#[test]
fn an_image_config_with_a_wrong_diff_id_is_refused_too() {
    let t = TestDir::new();
    let store = t.store("store");
    let tar = tar_of(&[("etc/motd", b"hello\n")]);
    let blob = gzip(&tar);
    let media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
    put_image_layer(
        &store,
        "image:bad",
        &blob,
        media_type,
        &sha256_digest(b"other"),
    );
    let parent = t.join("image-bad");
    std::fs::create_dir_all(&parent).expect("parent");
    assert_refused_with_nothing_written(&store, "image:bad", &parent, "diffIds");
    put_image_layer(
        &store,
        "image:good",
        &blob,
        media_type,
        &sha256_digest(&tar),
    );
    extract::extract(
        &store,
        "image:good",
        &parent.join("ok"),
        &ExtractOptions::default(),
    )
    .expect("right diff_id");
    assert_eq!(
        std::fs::read(parent.join("ok/etc/motd")).expect("file"),
        b"hello\n"
    );
}

#[test]
fn a_zstd_frame_asking_for_a_huge_window_is_refused_unless_allowed() {
    // The window is allocated from the frame header alone: a few bytes
    // asking for 1 GiB must not get it by default.
    let tar = tar_of(&[("config.json", b"{\"a\":1}\n")]);
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
    encoder
        .set_parameter(zstd::stream::raw::CParameter::WindowLog(30))
        .expect("window");
    encoder.write_all(&tar).expect("compressing");
    let blob = encoder.finish().expect("compressing");

    let mut out = Vec::new();
    let refused =
        ferry_store::decompress::decoder(Encoding::TarZstd, &blob[..], &Limits::default())
            .and_then(|mut d| d.read_to_end(&mut out));
    assert!(refused.is_err(), "a 1 GiB window was allocated");

    let allowed = Limits {
        max_zstd_window_log: 30,
        ..Limits::default()
    };
    let mut out = Vec::new();
    ferry_store::decompress::decoder(Encoding::TarZstd, &blob[..], &allowed)
        .expect("decoder")
        .read_to_end(&mut out)
        .expect("allowed when raised");
    assert_eq!(out, tar);
}
