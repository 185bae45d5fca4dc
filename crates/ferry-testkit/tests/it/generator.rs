//! What `generate` writes, checked file by file.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use ferry_testkit::safetensors::{dtype_size, read_header};
use ferry_testkit::{
    Dtype, GENERATOR_VERSION, MIB, ModelSpec, cached_model, file_sizes, generate, tree,
};
use serde_json::Value;

fn json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Checks every shard's header and the index; returns tensor -> shard.
fn check_shards(dir: &Path, shard_files: &[String], dtype: Dtype) -> BTreeMap<String, String> {
    let mut where_is = BTreeMap::new();
    let mut total = 0;
    for shard in shard_files {
        let path = dir.join(shard);
        let bytes = fs::read(&path).unwrap();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        assert_eq!(header_len % 8, 0, "{shard}: header padded to 8 bytes");
        let text = std::str::from_utf8(&bytes[8..8 + header_len as usize]).unwrap();
        assert!(text.starts_with('{') && text.trim_end().ends_with('}'));
        assert!(
            text.trim_end().len() + 8 > text.len(),
            "padding is under 8 spaces"
        );

        // The checked reader: offsets contiguous from 0, sizes = dtype x shape,
        // the last tensor ending at the end of the file.
        let header = read_header(&path).unwrap_or_else(|e| panic!("{shard}: {e}"));
        assert_eq!(header.metadata.as_ref().unwrap()["format"], "pt");
        assert_eq!(header.data_start, 8 + header_len);
        let mut end = 0;
        for t in &header.tensors {
            assert_eq!(t.dtype, dtype.safetensors_name(), "{}", t.name);
            let size = dtype_size(&t.dtype).unwrap() * t.shape.iter().product::<u64>();
            assert_eq!(t.data_offsets, (end, end + size), "{}", t.name);
            end += size;
            assert!(where_is.insert(t.name.clone(), shard.clone()).is_none());
        }
        assert_eq!(header.data_start + end, bytes.len() as u64);
        total += end;
    }
    if shard_files.len() > 1 {
        let index = json(&dir.join("model.safetensors.index.json"));
        assert_eq!(index["metadata"]["total_size"], total);
        let map: BTreeMap<String, String> = index["weight_map"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        assert_eq!(map, where_is, "the index maps every tensor to its shard");
    } else {
        assert!(!dir.join("model.safetensors.index.json").exists());
    }
    where_is
}

#[test]
fn a_sharded_model_is_valid_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::new(40 * MIB).shards(3).seed(5);
    let model = generate(dir.path(), &spec).unwrap();
    assert_eq!(
        model.shard_files,
        [
            "model-00001-of-00003.safetensors",
            "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors"
        ]
    );
    let tensors = check_shards(dir.path(), &model.shard_files, Dtype::Bf16);
    let a = model.plan.arch;
    assert_eq!(tensors.len() as u64, 3 + 9 * a.layers);
    assert_eq!(tensors["model.embed_tokens.weight"], model.shard_files[0]);
    assert_eq!(tensors["lm_head.weight"], model.shard_files[2]);

    let files: Vec<String> = file_sizes(dir.path()).into_keys().collect();
    let mut written = model.files.clone();
    written.sort();
    assert_eq!(files, written, "files lists every file written");
    for name in [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "README.md",
        "LICENSE",
        "configuration_synthetic.py",
    ] {
        assert!(files.contains(&name.to_string()), "{name}");
    }
    let config = json(&dir.path().join("config.json"));
    assert_eq!(config["hidden_size"], a.hidden);
    assert_eq!(config["num_hidden_layers"], a.layers);
    assert_eq!(config["intermediate_size"], a.intermediate);
    assert_eq!(config["torch_dtype"], "bfloat16");
    assert_eq!(config["synthetic_seed"], 5);
    let tokenizer = json(&dir.path().join("tokenizer.json"));
    assert_eq!(
        tokenizer["model"]["vocab"].as_object().unwrap().len(),
        32_000
    );
    let size = fs::metadata(dir.path().join("tokenizer.json"))
        .unwrap()
        .len();
    assert!(
        (1_900_000..2_100_000).contains(&size),
        "tokenizer.json {size}"
    );
    for name in [
        "generation_config.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        json(&dir.path().join(name));
    }
}

#[test]
fn one_shard_is_model_safetensors_without_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let model = generate(dir.path(), &ModelSpec::new(MIB).seed(1)).unwrap();
    assert_eq!(model.shard_files, ["model.safetensors"]);
    check_shards(dir.path(), &model.shard_files, Dtype::Bf16);
}

#[test]
fn f32_weights_are_valid_and_sized_as_f32() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::new(100 * MIB).shards(2).dtype(Dtype::F32);
    let model = generate(dir.path(), &spec).unwrap();
    check_shards(dir.path(), &model.shard_files, Dtype::F32);
    assert_eq!(model.weight_bytes, model.params * 4);
    assert_eq!(
        json(&dir.path().join("config.json"))["torch_dtype"],
        "float32"
    );
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_others() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::new(40 * MIB).shards(2).seed(9);
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let c = dir.path().join("c");
    generate(&a, &spec).unwrap();
    generate(&b, &spec).unwrap();
    generate(&c, &spec.seed(10)).unwrap();
    assert_eq!(tree(&a), tree(&b), "byte-identical for one seed");
    let (ta, tc) = (tree(&a), tree(&c));
    assert_eq!(
        ta.keys().collect::<Vec<_>>(),
        tc.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for name in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "tokenizer.json",
    ] {
        assert_ne!(ta[name], tc[name], "{name} differs with another seed");
    }
    // The architecture does not depend on the seed, so the headers match.
    let header = |dir: &Path| read_header(&dir.join("model-00001-of-00002.safetensors")).unwrap();
    assert_eq!(header(&a).tensors, header(&c).tensors);
}

#[test]
fn weights_do_not_compress_trivially_and_look_normal() {
    let dir = tempfile::tempdir().unwrap();
    let model = generate(dir.path(), &ModelSpec::new(MIB).seed(3)).unwrap();
    let path = dir.path().join(&model.shard_files[0]);
    let header = read_header(&path).unwrap();
    let bytes = fs::read(&path).unwrap();
    let embed = header
        .tensors
        .iter()
        .find(|t| t.name == "model.embed_tokens.weight")
        .unwrap();
    let data = &bytes[(header.data_start + embed.data_offsets.0) as usize
        ..(header.data_start + embed.data_offsets.1) as usize];
    let values: Vec<f64> = data
        .chunks_exact(2)
        .map(|c| f64::from(ferry_testkit::bf16_to_f32(u16::from_le_bytes([c[0], c[1]]))))
        .collect();
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(
        mean.abs() < 1e-4 && (std - 0.02).abs() < 5e-4,
        "{mean} {std}"
    );

    // Byte entropy of the data: real bf16 weights have about 7 bits per
    // byte (the high bytes repeat sign and exponent); repeated or constant
    // data would have far less.
    let mut counts = [0u64; 256];
    for b in data {
        counts[usize::from(*b)] += 1;
    }
    let total = data.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total;
            -p * p.log2()
        })
        .sum();
    assert!(entropy > 6.0, "byte entropy {entropy}");
    // No 1 MiB chunk repeats the one before it.
    let chunks: Vec<&[u8]> = data.chunks(1 << 20).collect();
    for pair in chunks.windows(2) {
        assert_ne!(&pair[0][..4096], &pair[1][..4096]);
    }
}

#[test]
fn the_cache_generates_once_and_keys_by_parameters_and_version() {
    let root = tempfile::tempdir().unwrap();
    let spec = ModelSpec::new(MIB).shards(2).seed(4);
    let first = cached_model(root.path(), &spec);
    let stamp = fs::metadata(first.join("config.json"))
        .unwrap()
        .modified()
        .unwrap();
    let again = cached_model(root.path(), &spec);
    assert_eq!(first, again);
    assert_eq!(
        fs::metadata(again.join("config.json"))
            .unwrap()
            .modified()
            .unwrap(),
        stamp,
        "reused, not regenerated"
    );
    let other = cached_model(root.path(), &spec.seed(5));
    assert_ne!(first, other);
    let name = first.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("v{GENERATOR_VERSION}-")),
        "{name}"
    );
    // Nothing but the two models is left in the cache (no staging debris).
    let entries: Vec<_> = fs::read_dir(first.parent().unwrap()).unwrap().collect();
    assert_eq!(entries.len(), 2);
}

#[test]
fn zero_shards_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = generate(dir.path(), &ModelSpec::new(MIB).shards(0)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
