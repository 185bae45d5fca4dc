//! What `ferry init DIR` and `ferry pack` can learn about a model from its
//! files: name, family, architecture, format, parameter count, precision and
//! quantization.
//!
//! Sources, each read only as far as needed: the directory's base name, the
//! Hugging Face `config.json` at the root, the extensions of the weight files,
//! and the JSON headers of `*.safetensors` files. Weight data is never read:
//! a safetensors header says every tensor's dtype and shape up front.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use ferry_spec::classify::classify;
use ferry_spec::media::Category;
use ferry_spec::modelfile::ModelFacts;
use serde_json::{Map, Value};

/// The largest safetensors header the format allows.
pub const MAX_SAFETENSORS_HEADER: u64 = 100_000_000;

/// A `config.json` larger than this is not a Hugging Face model config.
const MAX_CONFIG_JSON: u64 = 64 * 1024 * 1024;

/// A dtype must hold at least this share (1/100) of all parameters to be
/// named in the precision, so buffers such as BERT's int64 `position_ids`
/// do not turn `float32` into `float32,int64`.
const PRECISION_MIN_SHARE: u64 = 100;

/// Metadata found in a model directory: every field is a best guess and
/// `None` when nothing said. `name` is the directory's base name; `family`
/// is config.json's `model_type`, `arch` its `architectures[0]`; `format`
/// the weight format (`safetensors`, `gguf`, `pytorch`, `onnx`);
/// `param_size` counted from safetensors headers (`6.7B`); `precision` from
/// `torch_dtype`/`dtype`, else the safetensors dtypes, in ModelPack names;
/// `quantization` from `quantization_config.quant_method`.
pub type Detected = ModelFacts;

/// A file that detection could not read or understand.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// An I/O error on a named file.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A root `config.json` that is not a JSON object.
    #[error("malformed config.json {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A safetensors file whose header cannot be used.
    #[error("malformed safetensors header in {path}: {reason}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Detects metadata for the model in `dir`, given the relative paths
/// (forward slashes) of every file that will be packed.
///
/// config.json values win over what the safetensors headers say. When
/// weights come in several formats, the first present in this order is the
/// format: safetensors, gguf, pytorch, onnx, tensorflow, keras, flax, then
/// the others alphabetically.
pub fn detect_metadata(dir: &Path, files: &[String]) -> Result<Detected, DetectError> {
    let mut detected = Detected {
        name: dir_name(dir),
        ..Detected::default()
    };

    if files.iter().any(|f| f == "config.json") {
        let path = dir.join("config.json");
        let config = read_config(&path)?;
        detected.family = string_at(&config, &["model_type"]);
        detected.arch = architecture(&config);
        detected.precision = config_precision(&config);
        detected.quantization = string_at(&config, &["quantization_config", "quant_method"]);
    }

    detected.format = weight_format(files);

    let mut params: u64 = 0;
    let mut by_dtype: BTreeMap<String, u64> = BTreeMap::new();
    let mut any_safetensors = false;
    for rel in files.iter().filter(|f| is_safetensors(f)) {
        let path = dir.join(rel);
        let header = read_safetensors_header(&path)?;
        any_safetensors = true;
        params = params
            .checked_add(header.params)
            .ok_or_else(|| safetensors_error(&path, "parameter count overflows u64"))?;
        for (dtype, count) in header.by_dtype {
            let total = by_dtype.entry(dtype).or_default();
            *total = total.saturating_add(count);
        }
    }
    if any_safetensors {
        detected.param_size = Some(format_param_count(params));
        if detected.precision.is_none() {
            detected.precision = safetensors_precision(&by_dtype, params);
        }
    }
    Ok(detected)
}

/// Formats a parameter count as ModelPack's `paramSize` expects: at most one
/// decimal and a scale letter, `.0` dropped (`7B`, `6.7B`, `124.4M`, `1.5K`);
/// below 1000 the plain number.
pub fn format_param_count(n: u64) -> String {
    const UNITS: [(u64, char); 5] = [
        (1_000, 'K'),
        (1_000_000, 'M'),
        (1_000_000_000, 'B'),
        (1_000_000_000_000, 'T'),
        (1_000_000_000_000_000, 'Q'),
    ];
    if n < 1_000 {
        return n.to_string();
    }
    for (i, &(unit, letter)) in UNITS.iter().enumerate() {
        if n >= unit.saturating_mul(1_000) && i + 1 < UNITS.len() {
            continue;
        }
        // Integer rounding, half up, so 999_950 becomes 1M and not 1000K.
        let tenths = (u128::from(n) * 10 + u128::from(unit) / 2) / u128::from(unit);
        if tenths >= 10_000 && i + 1 < UNITS.len() {
            continue;
        }
        let (whole, frac) = (tenths / 10, tenths % 10);
        return if frac == 0 {
            format!("{whole}{letter}")
        } else {
            format!("{whole}.{frac}{letter}")
        };
    }
    n.to_string()
}

/// What one safetensors header says.
#[derive(Debug, Default, PartialEq, Eq)]
struct HeaderSummary {
    params: u64,
    /// Elements per safetensors dtype (`BF16`, `F32`, ...).
    by_dtype: BTreeMap<String, u64>,
}

/// Reads only the header of a safetensors file: an 8-byte little-endian
/// length N, then N bytes of JSON mapping tensor names to dtype and shape.
fn read_safetensors_header(path: &Path) -> Result<HeaderSummary, DetectError> {
    let io_err = |source| DetectError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = crate::pack::walk::open_regular(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut len_bytes = [0u8; 8];
    file.read_exact(&mut len_bytes).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            safetensors_error(path, "file is shorter than 8 bytes")
        } else {
            io_err(e)
        }
    })?;
    let n = u64::from_le_bytes(len_bytes);
    if n > MAX_SAFETENSORS_HEADER {
        return Err(safetensors_error(
            path,
            format!("header length {n} exceeds {MAX_SAFETENSORS_HEADER} bytes"),
        ));
    }
    if n > file_len.saturating_sub(8) {
        return Err(safetensors_error(
            path,
            format!("header length {n} runs past the end of the {file_len}-byte file"),
        ));
    }
    // n <= 100_000_000, so it fits in usize on every supported target.
    let mut header = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    file.take(n).read_to_end(&mut header).map_err(io_err)?;
    if header.len() as u64 != n {
        return Err(safetensors_error(path, "file ends inside the header"));
    }
    parse_safetensors_header(&header).map_err(|reason| safetensors_error(path, reason))
}

fn parse_safetensors_header(header: &[u8]) -> Result<HeaderSummary, String> {
    if header.first() != Some(&b'{') {
        return Err("header does not start with '{'".to_string());
    }
    let tensors: Map<String, Value> =
        serde_json::from_slice(header).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut summary = HeaderSummary::default();
    for (name, info) in &tensors {
        if name == "__metadata__" {
            continue;
        }
        let dtype = info
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("tensor {name:?} has no dtype"))?;
        let shape = info
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("tensor {name:?} has no shape"))?;
        let mut elements: u64 = 1;
        for dim in shape {
            let dim = dim
                .as_u64()
                .ok_or_else(|| format!("tensor {name:?} has a non-integer dimension {dim}"))?;
            elements = elements
                .checked_mul(dim)
                .ok_or_else(|| format!("tensor {name:?} has more than 2^64 elements"))?;
        }
        summary.params = summary
            .params
            .checked_add(elements)
            .ok_or("parameter count overflows u64")?;
        let count = summary.by_dtype.entry(dtype.to_string()).or_default();
        *count = count.saturating_add(elements);
    }
    Ok(summary)
}

fn safetensors_error(path: &Path, reason: impl Into<String>) -> DetectError {
    DetectError::Safetensors {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn is_safetensors(rel: &str) -> bool {
    rel.rsplit('/')
        .next()
        .and_then(|name| name.rsplit_once('.'))
        .is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("safetensors"))
}

fn dir_name(dir: &Path) -> Option<String> {
    let name = match dir.file_name() {
        Some(name) => name.to_os_string(),
        // `.` or `..`: the real directory's name.
        None => dir.canonicalize().ok()?.file_name()?.to_os_string(),
    };
    name.into_string().ok()
}

fn read_config(path: &Path) -> Result<Map<String, Value>, DetectError> {
    let io_err = |source| DetectError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = crate::pack::walk::open_regular(path).map_err(io_err)?;
    let mut bytes = Vec::new();
    // Read one byte past the cap to tell "at the cap" from "over it".
    file.take(MAX_CONFIG_JSON + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    let config_error = |reason: String| DetectError::Config {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() as u64 > MAX_CONFIG_JSON {
        return Err(config_error(format!("larger than {MAX_CONFIG_JSON} bytes")));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(config_error("not a JSON object".to_string())),
        Err(e) => Err(config_error(format!("invalid JSON: {e}"))),
    }
}

/// The non-empty string at a path of object keys.
fn string_at(config: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    let (last, parents) = keys.split_last()?;
    let mut object = config;
    for key in parents {
        object = object.get(*key)?.as_object()?;
    }
    let value = object.get(*last)?.as_str()?.trim();
    (!value.is_empty()).then(|| value.to_string())
}

fn architecture(config: &Map<String, Value>) -> Option<String> {
    match config.get("architectures")? {
        Value::Array(items) => items.first()?.as_str(),
        // Some hand-written configs give a single string.
        Value::String(s) => Some(s.as_str()),
        _ => None,
    }
    .map(str::trim)
    .filter(|s| !s.is_empty())
    .map(str::to_string)
}

/// `torch_dtype` (or `dtype`, its name since transformers 4.56), at the top
/// level or, for multimodal models, in `text_config`.
fn config_precision(config: &Map<String, Value>) -> Option<String> {
    [
        &["torch_dtype"][..],
        &["dtype"],
        &["text_config", "torch_dtype"],
        &["text_config", "dtype"],
    ]
    .iter()
    .filter_map(|keys| string_at(config, keys))
    .find_map(|dtype| torch_dtype_to_precision(&dtype))
}

/// Maps a PyTorch dtype name to ModelPack's precision name; `auto` says
/// nothing.
fn torch_dtype_to_precision(dtype: &str) -> Option<String> {
    let lower = dtype.to_ascii_lowercase();
    let name = lower.strip_prefix("torch.").unwrap_or(&lower);
    let mapped = match name {
        "auto" | "" => return None,
        "bfloat16" | "bf16" => "bfloat16",
        "float16" | "fp16" | "half" => "float16",
        "float32" | "fp32" | "float" => "float32",
        "float64" | "fp64" | "double" => "float64",
        "float8_e4m3fn" | "float8_e4m3fnuz" | "float8_e4m3" | "fp8" => "float8_e4m3",
        "float8_e5m2" | "float8_e5m2fnuz" => "float8_e5m2",
        "int8" => "int8",
        "uint8" => "uint8",
        "int4" => "int4",
        "int16" => "int16",
        "int32" => "int32",
        "int64" => "int64",
        other => other,
    };
    Some(mapped.to_string())
}

/// Maps a safetensors dtype (`BF16`, `F8_E4M3`, ...) to ModelPack's name.
fn safetensors_dtype_to_precision(dtype: &str) -> String {
    match dtype {
        "BF16" => "bfloat16",
        "F16" => "float16",
        "F32" => "float32",
        "F64" => "float64",
        "F8_E4M3" => "float8_e4m3",
        "F8_E5M2" => "float8_e5m2",
        "F8_E8M0" => "float8_e8m0",
        "F6_E2M3" => "float6_e2m3",
        "F6_E3M2" => "float6_e3m2",
        "F4" => "float4",
        "I8" => "int8",
        "U8" => "uint8",
        "I16" => "int16",
        "U16" => "uint16",
        "I32" => "int32",
        "U32" => "uint32",
        "I64" => "int64",
        "U64" => "uint64",
        "BOOL" => "bool",
        "C64" => "complex64",
        other => return other.to_ascii_lowercase(),
    }
    .to_string()
}

/// The dtypes holding a real share of the parameters, sorted and comma
/// separated.
fn safetensors_precision(by_dtype: &BTreeMap<String, u64>, total: u64) -> Option<String> {
    let mut names: Vec<String> = by_dtype
        .iter()
        .filter(|&(_, &count)| total == 0 || count.saturating_mul(PRECISION_MIN_SHARE) >= total)
        .map(|(dtype, _)| safetensors_dtype_to_precision(dtype))
        .collect();
    names.sort();
    names.dedup();
    (!names.is_empty()).then(|| names.join(","))
}

/// Preferred formats first; see [`detect_metadata`].
const FORMAT_RANK: &[&str] = &[
    "safetensors",
    "gguf",
    "pytorch",
    "onnx",
    "tensorflow",
    "keras",
    "flax",
];

fn weight_format(files: &[String]) -> Option<String> {
    files
        .iter()
        .filter(|f| classify(f) == Category::Weight)
        .filter_map(|f| format_of(f))
        .min_by_key(|format| {
            let rank = FORMAT_RANK
                .iter()
                .position(|r| r == format)
                .unwrap_or(FORMAT_RANK.len());
            (rank, format.clone())
        })
}

/// The format name of one weight file.
fn format_of(rel: &str) -> Option<String> {
    let lower = rel.to_ascii_lowercase();
    if lower
        .split('/')
        .any(|c| c.ends_with(".mlpackage") || c.ends_with(".mlmodelc"))
    {
        return Some("coreml".to_string());
    }
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let ext = name.rsplit_once('.').map(|(_, ext)| ext).unwrap_or("");
    let format = match ext {
        "" => return None,
        "safetensors" => "safetensors",
        "gguf" => "gguf",
        "ggml" | "ggmf" | "ggjt" | "ggmlv3" => "ggml",
        "bin" | "pt" | "pth" | "pt2" | "ptl" | "ckpt" | "mar" | "distcp" => "pytorch",
        "pte" => "executorch",
        "onnx" | "onnx_data" | "ort" => "onnx",
        "pb" | "index" => "tensorflow",
        e if e.starts_with("data-") => "tensorflow",
        "tflite" | "lite" => "tflite",
        "h5" | "hdf5" | "hdf" | "keras" => "keras",
        "msgpack" => "flax",
        "mlmodel" | "mlpackage" | "coreml" => "coreml",
        "engine" | "plan" | "trt" => "tensorrt",
        "pdparams" | "pdiparams" | "pdmodel" | "pdopt" => "paddle",
        "npy" | "npz" => "numpy",
        "pkl" | "pickle" => "pickle",
        "caffemodel" => "caffe",
        "params" => "mxnet",
        other => other,
    };
    Some(format.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Writes a safetensors file with the given (name, dtype, shape)
    /// tensors and zeroed data of the right size.
    fn write_safetensors(path: &Path, tensors: &[(&str, &str, &[u64])]) {
        let mut header = Map::new();
        let mut offset = 0u64;
        for (name, dtype, shape) in tensors {
            let size = match *dtype {
                "F64" | "I64" | "U64" => 8,
                "F32" | "I32" | "U32" => 4,
                "BF16" | "F16" | "I16" | "U16" => 2,
                _ => 1,
            } * shape.iter().product::<u64>();
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}),
            );
            offset += size;
        }
        header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
        let mut json = serde_json::to_vec(&header).unwrap();
        // Real writers pad the header with spaces to an 8-byte boundary.
        while !json.len().is_multiple_of(8) {
            json.push(b' ');
        }
        write_raw(path, json.len() as u64, &json, offset as usize);
    }

    fn write_raw(path: &Path, declared_len: u64, header: &[u8], data_len: usize) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        let mut bytes = declared_len.to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend(std::iter::repeat_n(0u8, data_len));
        fs::write(path, bytes).unwrap();
    }

    fn model_dir() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tiny-llama");
        fs::create_dir(&dir).unwrap();
        (tmp, dir)
    }

    fn files(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hugging_face_directory() {
        let (_tmp, dir) = model_dir();
        fs::write(
            dir.join("config.json"),
            r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "torch_dtype": "bfloat16",
                "quantization_config": {"quant_method": "gptq", "bits": 4}}"#,
        )
        .unwrap();
        write_safetensors(
            &dir.join("model-00001-of-00002.safetensors"),
            &[("embed", "BF16", &[32, 16]), ("norm", "F32", &[16])],
        );
        write_safetensors(
            &dir.join("model-00002-of-00002.safetensors"),
            &[("lm_head", "BF16", &[32, 16])],
        );
        fs::write(dir.join("tokenizer.json"), "{}").unwrap();
        fs::write(dir.join("README.md"), "# tiny").unwrap();
        let list = files(&[
            "README.md",
            "config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "tokenizer.json",
        ]);
        let detected = detect_metadata(&dir, &list).unwrap();
        assert_eq!(
            detected,
            Detected {
                name: Some("tiny-llama".into()),
                family: Some("llama".into()),
                arch: Some("LlamaForCausalLM".into()),
                format: Some("safetensors".into()),
                param_size: Some("1K".into()), // 512 + 16 + 512 = 1040
                precision: Some("bfloat16".into()),
                quantization: Some("gptq".into()),
            }
        );
    }

    #[test]
    fn precision_falls_back_to_safetensors_dtypes() {
        let (_tmp, dir) = model_dir();
        write_safetensors(&dir.join("a.safetensors"), &[("w", "F16", &[100, 100])]);
        let d = detect_metadata(&dir, &files(&["a.safetensors"])).unwrap();
        assert_eq!(d.precision.as_deref(), Some("float16"));
        assert_eq!(d.param_size.as_deref(), Some("10K"));
        assert_eq!(d.family, None);

        // Several significant dtypes: sorted, comma separated; a tiny int64
        // buffer is not a precision.
        write_safetensors(
            &dir.join("b/model.safetensors"),
            &[
                ("w", "F32", &[100, 100]),
                ("scale", "F8_E4M3", &[50, 100]),
                ("position_ids", "I64", &[1, 8]),
            ],
        );
        let d = detect_metadata(&dir, &files(&["a.safetensors", "b/model.safetensors"])).unwrap();
        assert_eq!(d.precision.as_deref(), Some("float16,float32,float8_e4m3"));
        assert_eq!(d.param_size.as_deref(), Some("25K")); // 10_000 + 15_008

        // config.json wins over the headers.
        fs::write(dir.join("config.json"), r#"{"dtype": "torch.float32"}"#).unwrap();
        let d = detect_metadata(&dir, &files(&["config.json", "a.safetensors"])).unwrap();
        assert_eq!(d.precision.as_deref(), Some("float32"));
    }

    #[test]
    fn config_dtype_variants() {
        let (_tmp, dir) = model_dir();
        let cases = [
            (r#"{"torch_dtype": "float16"}"#, Some("float16")),
            (r#"{"dtype": "bfloat16"}"#, Some("bfloat16")),
            (r#"{"torch_dtype": "auto"}"#, None),
            (r#"{"torch_dtype": "float8_e4m3fn"}"#, Some("float8_e4m3")),
            (
                r#"{"text_config": {"torch_dtype": "bfloat16"}}"#,
                Some("bfloat16"),
            ),
            (r#"{"torch_dtype": 16}"#, None),
            (r#"{"model_type": "bert"}"#, None),
        ];
        for (json, want) in cases {
            fs::write(dir.join("config.json"), json).unwrap();
            let d = detect_metadata(&dir, &files(&["config.json"])).unwrap();
            assert_eq!(d.precision.as_deref(), want, "{json}");
            assert_eq!(d.param_size, None);
        }
        fs::write(
            dir.join("config.json"),
            r#"{"architectures": "BertModel", "model_type": " ", "quantization_config": {}}"#,
        )
        .unwrap();
        let d = detect_metadata(&dir, &files(&["config.json"])).unwrap();
        assert_eq!(d.arch.as_deref(), Some("BertModel"));
        assert_eq!(d.family, None);
        assert_eq!(d.quantization, None);
    }

    #[test]
    fn config_json_is_only_read_when_listed() {
        let (_tmp, dir) = model_dir();
        fs::write(dir.join("config.json"), "not json").unwrap();
        let d = detect_metadata(&dir, &files(&["README.md"])).unwrap();
        assert_eq!(d.family, None);
    }

    #[test]
    fn format_from_weight_extensions() {
        let (_tmp, dir) = model_dir();
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["llama.Q4_K_M.gguf"], Some("gguf")),
            (&["pytorch_model.bin", "tokenizer.bin"], Some("pytorch")),
            (&["tokenizer.bin", "tokenizer.model"], None),
            (&["onnx/model.onnx", "onnx/model.onnx_data"], Some("onnx")),
            (
                &["pytorch_model.bin", "onnx/model.onnx", "tf_model.h5"],
                Some("pytorch"),
            ),
            (&["tf_model.h5", "flax_model.msgpack"], Some("keras")),
            (
                &["saved_model.pb", "variables/variables.index"],
                Some("tensorflow"),
            ),
            (&["model.tflite"], Some("tflite")),
            (
                &["Model.mlpackage/Data/com.apple.CoreML/weights/weight.bin"],
                Some("coreml"),
            ),
            (&["README.md", "generation_config.json"], None),
        ];
        for (list, want) in cases {
            let d = detect_metadata(&dir, &files(list)).unwrap();
            assert_eq!(d.format.as_deref(), *want, "{list:?}");
        }
        // safetensors wins over everything, and its header is read.
        write_safetensors(&dir.join("model.safetensors"), &[("w", "BF16", &[2])]);
        let d = detect_metadata(
            &dir,
            &files(&["pytorch_model.bin", "model.safetensors", "model.gguf"]),
        )
        .unwrap();
        assert_eq!(d.format.as_deref(), Some("safetensors"));
        assert_eq!(d.param_size.as_deref(), Some("2"));
    }

    #[test]
    fn malformed_safetensors_headers_are_errors_naming_the_file() {
        let (_tmp, dir) = model_dir();
        let path = dir.join("bad.safetensors");
        let list = files(&["bad.safetensors"]);
        // (declared header length, bytes after it, expected message part)
        let cases: &[(Option<u64>, &[u8], &str)] = &[
            (None, b"", "shorter than 8 bytes"),
            (
                Some(100_000_001),
                b"{}",
                "header length 100000001 exceeds 100000000 bytes",
            ),
            (Some(64), b"{}", "runs past the end"),
            (None, b"[1] ", "does not start with '{'"),
            (None, br#"{"a""#, "invalid JSON"),
            (None, br#"{"w": {"dtype": "F32"}}"#, "has no shape"),
            (None, br#"{"w": {"shape": [1, 2]}}"#, "has no dtype"),
            (
                None,
                br#"{"w": {"dtype": "F32", "shape": [-1]}}"#,
                "non-integer dimension -1",
            ),
            (
                None,
                br#"{"w":{"dtype":"F32","shape":[18446744073709551615,2]}}"#,
                "more than 2^64 elements",
            ),
        ];
        for (declared, header, want) in cases {
            if header.is_empty() {
                fs::write(&path, [1u8, 2, 3]).unwrap();
            } else {
                write_raw(&path, declared.unwrap_or(header.len() as u64), header, 0);
            }
            let err = detect_metadata(&dir, &list).unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, DetectError::Safetensors { .. }), "{message}");
            assert!(message.contains("bad.safetensors"), "{message}");
            assert!(message.contains(want), "{message} should contain {want}");
        }
    }

    #[test]
    fn parameter_overflow_across_files_is_an_error() {
        let (_tmp, dir) = model_dir();
        let h = br#"{"w":{"dtype":"F32","shape":[18446744073709551615]}}"#;
        write_raw(&dir.join("a.safetensors"), h.len() as u64, h, 0);
        write_raw(&dir.join("b.safetensors"), h.len() as u64, h, 0);
        let err = detect_metadata(&dir, &files(&["a.safetensors", "b.safetensors"])).unwrap_err();
        assert!(err.to_string().contains("overflows"), "{err}");
    }

    #[test]
    fn malformed_config_json_is_an_error_naming_the_file() {
        let (_tmp, dir) = model_dir();
        for (content, want) in [("{oops", "invalid JSON"), ("[1, 2]", "not a JSON object")] {
            fs::write(dir.join("config.json"), content).unwrap();
            let err = detect_metadata(&dir, &files(&["config.json"])).unwrap_err();
            assert!(matches!(err, DetectError::Config { .. }), "{err}");
            let message = err.to_string();
            assert!(message.contains("config.json"), "{message}");
            assert!(message.contains(want), "{message}");
        }
    }

    #[test]
    fn missing_listed_file_is_an_io_error() {
        let (_tmp, dir) = model_dir();
        let err = detect_metadata(&dir, &files(&["gone.safetensors"])).unwrap_err();
        assert!(matches!(err, DetectError::Io { .. }), "{err}");
        assert!(err.to_string().contains("gone.safetensors"), "{err}");
    }

    #[test]
    fn empty_directory_gives_only_the_name() {
        let (_tmp, dir) = model_dir();
        let d = detect_metadata(&dir, &[]).unwrap();
        assert_eq!(
            d,
            Detected {
                name: Some("tiny-llama".into()),
                ..Detected::default()
            }
        );
        let d = detect_metadata(&dir.join("."), &[]).unwrap();
        assert_eq!(d.name.as_deref(), Some("tiny-llama"));
    }

    #[test]
    fn param_count_formatting() {
        let cases = [
            (0, "0"),
            (7, "7"),
            (999, "999"),
            (1_000, "1K"),
            (1_040, "1K"),
            (1_234, "1.2K"),
            (1_250, "1.3K"),
            (999_949, "999.9K"),
            (999_950, "1M"),
            (1_500_000, "1.5M"),
            (124_439_808, "124.4M"),
            (999_999_999, "1B"),
            (1_000_000_000, "1B"),
            (6_738_415_616, "6.7B"),
            (7_000_000_000, "7B"),
            (7_241_732_096, "7.2B"),
            (70_553_706_496, "70.6B"),
            (671_026_419_200, "671B"),
            (1_000_000_000_000, "1T"),
            (u64::MAX, "18446.7Q"),
        ];
        for (n, want) in cases {
            assert_eq!(format_param_count(n), want, "{n}");
        }
    }
}
