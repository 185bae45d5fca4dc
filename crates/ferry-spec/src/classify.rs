//! The heuristic file classifier: which ModelPack category a file belongs to
//! when the user did not say.
//!
//! Every answer is a guess from the path alone (no I/O), so callers mark the
//! resulting layer with `org.cncf.model.file.mediatype.untested: "true"`.
//! The extension lists follow what Hugging Face, PyTorch, TensorFlow,
//! llama.cpp and modctl's own `modctl modelfile generate` put in model
//! repositories.

use crate::media::Category;

/// Directory names that mark their contents as training or evaluation data.
const DATA_DIRS: &[&str] = &[
    "data",
    "dataset",
    "datasets",
    "train",
    "test",
    "eval",
    "validation",
    "val",
];

/// Data formats that are datasets wherever they appear: nobody ships weights
/// or configuration as Parquet or Arrow.
const ALWAYS_DATA_EXTS: &[&str] = &[".parquet", ".arrow", ".tfrecord", ".tfrecords", ".feather"];

/// Data formats that are datasets only inside a data directory; elsewhere a
/// CSV or JSONL is usually an evaluation table or a sample, so a doc.
const DATA_DIR_EXTS: &[&str] = &[
    ".jsonl",
    ".csv",
    ".tsv",
    ".avro",
    ".orc",
    ".json.gz",
    ".jsonl.gz",
    ".jsonl.zst",
    ".csv.gz",
    ".tsv.gz",
    ".webdataset",
    ".tar",
];

/// Weight file extensions (the last extension, lowercased, without the dot).
const WEIGHT_EXTS: &[&str] = &[
    // Hugging Face and PyTorch.
    "safetensors",
    "bin",
    "pt",
    "pth",
    "pt2",
    "pte",
    "ptl",
    "ckpt",
    "checkpoint",
    "distcp",
    "mar",
    "ot",
    // llama.cpp and GGML.
    "gguf",
    "ggml",
    "ggmf",
    "ggjt",
    "ggmlv3",
    "llamafile",
    // ONNX.
    "onnx",
    "onnx_data",
    "ort",
    // TensorFlow and Keras.
    "h5",
    "hdf5",
    "hdf",
    "keras",
    "pb",
    "tflite",
    "lite",
    "index",
    // Flax, NumPy, pickles.
    "msgpack",
    "npz",
    "npy",
    "pkl",
    "pickle",
    "joblib",
    // Apple, NVIDIA, other runtimes and frameworks.
    "mlmodel",
    "mlpackage",
    "coreml",
    "engine",
    "plan",
    "trt",
    "params",
    "nemo",
    "t7",
    "caffemodel",
    "pdparams",
    "pdiparams",
    "pdmodel",
    "pdopt",
    "mnn",
    "rknn",
    "tnnmodel",
    "dlc",
    "circle",
    "xmodel",
    "mleap",
    "weights",
    "model",
];

/// Extensions of containers that only ever hold tensors; a file named
/// `vocab_proj.safetensors` is still weights, unlike `tokenizer.bin`.
const TENSOR_ONLY_EXTS: &[&str] = &["safetensors", "gguf", "ggml", "onnx", "onnx_data"];

/// Directory suffixes of bundle formats whose whole content is one model.
const WEIGHT_BUNDLE_DIR_SUFFIXES: &[&str] = &[".mlpackage", ".mlmodelc"];

/// Source code, notebooks and native libraries built from code.
const CODE_EXTS: &[&str] = &[
    "py", "pyi", "pyx", "pxd", "ipynb", "sh", "bash", "zsh", "fish", "ksh", "ps1", "psm1", "bat",
    "cmd", "js", "mjs", "cjs", "jsx", "ts", "tsx", "go", "rs", "c", "cc", "cpp", "cxx", "h", "hh",
    "hpp", "hxx", "cu", "cuh", "java", "kt", "kts", "scala", "swift", "rb", "r", "jl", "lua", "pl",
    "pm", "php", "cs", "dart", "zig", "m", "mm", "sql", "cmake", "mk", "proto", "patch", "so",
    "dylib", "dll",
];

/// Machine-readable configuration formats.
const CONFIG_EXTS: &[&str] = &[
    "json",
    "json5",
    "jsonc",
    "yaml",
    "yml",
    "toml",
    "ini",
    "cfg",
    "conf",
    "config",
    "properties",
    "xml",
    "jinja",
    "jinja2",
    "j2",
    "tiktoken",
    "pbtxt",
    "prototxt",
    "hparams",
];

/// Files named like documentation; they stay docs when their extension is
/// absent or textual (`LICENSE`, `README.md`, `NOTICE.txt`).
const DOC_NAME_PREFIXES: &[&str] = &[
    "readme",
    "license",
    "licence",
    "notice",
    "copying",
    "changelog",
    "use_policy",
    "model_card",
    "modelcard",
    "authors",
    "citation",
    "contributing",
    "security",
];

/// Extensions under which a doc-named file is still a doc.
const TEXT_EXTS: &[&str] = &[
    "", "md", "markdown", "txt", "rst", "html", "htm", "pdf", "adoc",
];

/// Exact file names (lowercased) that are code whatever their extension.
const CODE_NAMES: &[&str] = &[
    "dockerfile",
    "containerfile",
    "makefile",
    "gnumakefile",
    "cmakelists.txt",
    "pyproject.toml",
    "setup.cfg",
    "setup.py",
    "tox.ini",
    "pipfile",
    "pipfile.lock",
    "poetry.lock",
    "uv.lock",
    "environment.yml",
    "environment.yaml",
    "conda.yaml",
    "conda.yml",
    "python_env.yaml",
    "cargo.toml",
    "cargo.lock",
    "go.mod",
    "go.sum",
    "package.json",
    "package-lock.json",
];

/// Exact file names (lowercased) that are weight configuration although
/// their extension says otherwise.
const CONFIG_NAMES: &[&str] = &["vocab.txt", "merges.txt", "mlmodel"];

/// Classifies a file by its path relative to the model root (forward
/// slashes), case-insensitively. The rules, first match wins:
///
/// 1. Tokenizers are weight config, never weights: a name containing
///    `tokenizer` or `vocab`, a `.tiktoken`, `.spm` or `.vocab` file, or a
///    sentencepiece model (`spiece.model`, `sentencepiece.bpe.model`, any
///    `.model` whose name mentions `sentencepiece`, `spiece`, `spm` or
///    `bpe`), whatever its extension. Only tensor-only containers
///    (`.safetensors`, `.gguf`, `.ggml`, `.onnx`) escape this rule.
/// 2. Build and environment files are code: `requirements*.txt`,
///    `Dockerfile*`, `Makefile`, `pyproject.toml`, `setup.cfg`,
///    `environment.yml`, ...
/// 3. `vocab.txt`, `merges.txt` and MLflow's `MLmodel` are weight config.
/// 4. Datasets: `.parquet`, `.arrow`, `.tfrecord`, `.feather` anywhere;
///    `.jsonl`, `.csv`, `.tsv`, `.avro`, `.orc`, `.json.gz`, `.csv.gz`, ...
///    when a directory component is `data`, `dataset(s)`, `train`, `test`,
///    `eval`, `validation` or `val`.
/// 5. Doc names (`README*`, `LICENSE*`, `LICENCE*`, `NOTICE*`, `COPYING*`,
///    `CHANGELOG*`, `USE_POLICY*`, `MODEL_CARD*`, ...) with no extension or
///    a textual one are docs.
/// 6. Weights by extension (`.safetensors`, `.bin`, `.gguf`, `.onnx`, ...),
///    split shards (`model-00001-of-00002.safetensors`,
///    `x.ckpt.data-00000-of-00001`, `x.gguf.part1of2`) and every file inside
///    a `.mlpackage` or `.mlmodelc` bundle.
/// 7. Code by extension (`.py`, `.sh`, `.ipynb`, `.rs`, `.cu`, ..., and
///    native libraries `.so`, `.dylib`, `.dll`, which are compiled code).
/// 8. Configuration by extension (`.json`, `.yaml`, `.toml`, `.ini`,
///    `.cfg`, `.jinja`, ...), at any depth (`1_Pooling/config.json`).
/// 9. Everything else is a doc: `.md`, `.txt`, `.pdf`, images, a `.csv`
///    outside a data directory, and files with unknown or no extension.
///    Unknown files are never code, because an unrecognised binary is
///    safer to ship as an inert doc than as something to execute.
pub fn classify(rel_path: &str) -> Category {
    let lower = rel_path.to_ascii_lowercase();
    let mut components: Vec<&str> = lower.split('/').filter(|c| !c.is_empty()).collect();
    let name = components.pop().unwrap_or("");
    let dirs = components;
    let ext = extension(name);

    if is_tokenizer(name, ext) {
        return Category::WeightConfig;
    }
    if is_code_name(name) {
        return Category::Code;
    }
    if CONFIG_NAMES.contains(&name) {
        return Category::WeightConfig;
    }
    if is_dataset(name, &dirs) {
        return Category::Dataset;
    }
    if is_doc_name(name, ext) {
        return Category::Doc;
    }
    if is_weight(name, ext, &dirs) {
        return Category::Weight;
    }
    if CODE_EXTS.contains(&ext) {
        return Category::Code;
    }
    if CONFIG_EXTS.contains(&ext) {
        return Category::WeightConfig;
    }
    Category::Doc
}

/// The last extension without its dot, or `""`; a leading dot (`.gitignore`)
/// starts a hidden name, not an extension.
fn extension(name: &str) -> &str {
    match name.rfind('.') {
        Some(i) if i > 0 => &name[i + 1..],
        _ => "",
    }
}

fn is_tokenizer(name: &str, ext: &str) -> bool {
    if TENSOR_ONLY_EXTS.contains(&ext) {
        return false;
    }
    if name.contains("tokenizer") || name.contains("vocab") {
        return true;
    }
    if matches!(ext, "tiktoken" | "spm" | "vocab") {
        return true;
    }
    // A sentencepiece model is a `.model` (or `.model.v3`-style variant)
    // whose name says what it is; other `.model` files are weights.
    let stem_has_model = ext == "model" || name.contains(".model.");
    stem_has_model
        && ["sentencepiece", "spiece", "spm", "bpe", "sp.model"]
            .iter()
            .any(|marker| name.contains(marker))
}

fn is_code_name(name: &str) -> bool {
    CODE_NAMES.contains(&name)
        || (name.starts_with("requirements") && matches!(extension(name), "txt" | "in"))
        || name.starts_with("dockerfile")
        || name.ends_with(".dockerfile")
}

fn is_dataset(name: &str, dirs: &[&str]) -> bool {
    if ALWAYS_DATA_EXTS.iter().any(|ext| name.ends_with(ext)) {
        return true;
    }
    dirs.iter().any(|dir| DATA_DIRS.contains(dir))
        && DATA_DIR_EXTS.iter().any(|ext| name.ends_with(ext))
}

fn is_doc_name(name: &str, ext: &str) -> bool {
    TEXT_EXTS.contains(&ext) && DOC_NAME_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn is_weight(name: &str, ext: &str, dirs: &[&str]) -> bool {
    if WEIGHT_EXTS.contains(&ext) {
        return true;
    }
    if dirs
        .iter()
        .any(|dir| WEIGHT_BUNDLE_DIR_SUFFIXES.iter().any(|s| dir.ends_with(s)))
    {
        return true;
    }
    // TensorFlow checkpoint data: `model.ckpt.data-00000-of-00001`.
    if let Some(rest) = ext.strip_prefix("data-")
        && is_shard_counter(rest)
    {
        return true;
    }
    // A split weight file: `model.gguf.part1of2`, `model.safetensors.part0`.
    if ext.starts_with("part") {
        let inner = &name[..name.len() - ext.len() - 1];
        return WEIGHT_EXTS.contains(&extension(inner));
    }
    false
}

/// True for `00000-of-00001`.
fn is_shard_counter(s: &str) -> bool {
    match s.split_once("-of-") {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;

    fn check(cases: &[(&str, Category)]) {
        for (path, want) in cases {
            assert_eq!(classify(path), *want, "classify({path:?})");
        }
    }

    #[test]
    fn weights_by_extension() {
        check(&[
            ("model.safetensors", Weight),
            ("pytorch_model.bin", Weight),
            ("model.pt", Weight),
            ("consolidated.00.pth", Weight),
            ("original/consolidated.00.pth", Weight),
            ("last.ckpt", Weight),
            ("llama-2-7b.Q4_K_M.gguf", Weight),
            ("ggml-model-q4_0.ggml", Weight),
            ("onnx/model.onnx", Weight),
            ("onnx/model.onnx_data", Weight),
            ("tf_model.h5", Weight),
            ("flax_model.msgpack", Weight),
            ("model.tflite", Weight),
            ("saved_model.pb", Weight),
            ("embeddings.npy", Weight),
            ("clf.joblib", Weight),
            ("model.pkl", Weight),
            ("Model.mlmodel", Weight),
            ("model.plan", Weight),
            ("rust_model.ot", Weight),
            ("model-0000.params", Weight),
            ("model.nemo", Weight),
            ("deploy.caffemodel", Weight),
            ("model.pdparams", Weight),
            ("mistral.llamafile", Weight),
            ("word2vec.model", Weight),
        ]);
    }

    #[test]
    fn weight_shards_and_bundles() {
        check(&[
            ("model-00001-of-00002.safetensors", Weight),
            ("pytorch_model-00002-of-00002.bin", Weight),
            ("variables/variables.data-00000-of-00001", Weight),
            ("variables/variables.index", Weight),
            ("model.ckpt.data-00000-of-00001", Weight),
            ("big.gguf.part1of2", Weight),
            (
                "Model.mlpackage/Data/com.apple.CoreML/weights/weight.bin",
                Weight,
            ),
            ("Model.mlpackage/Manifest.json", Weight),
            ("notes.part1", Doc),
        ]);
    }

    #[test]
    fn tokenizers_are_never_weights() {
        check(&[
            ("tokenizer.bin", WeightConfig),
            ("tokenizer.model", WeightConfig),
            ("original/tokenizer.model", WeightConfig),
            ("tokenizer.model.v3", WeightConfig),
            ("spiece.model", WeightConfig),
            ("sentencepiece.bpe.model", WeightConfig),
            ("source.spm", WeightConfig),
            ("sp.model", WeightConfig),
            ("vocab.bin", WeightConfig),
            ("vocab.txt", WeightConfig),
            ("vocab.json", WeightConfig),
            ("merges.txt", WeightConfig),
            ("cl100k_base.tiktoken", WeightConfig),
            ("qwen.tiktoken", WeightConfig),
            ("tokenizer/tokenizer.pt", WeightConfig),
            ("TOKENIZER.BIN", WeightConfig),
            ("text_tokenizer.pkl", WeightConfig),
            ("tokenizer.json", WeightConfig),
            ("tokenizer_config.json", WeightConfig),
            // Tensor-only containers are weights even with such a name.
            ("vocab_projection.safetensors", Weight),
        ]);
    }

    #[test]
    fn weight_config_files() {
        check(&[
            ("config.json", WeightConfig),
            ("generation_config.json", WeightConfig),
            ("special_tokens_map.json", WeightConfig),
            ("added_tokens.json", WeightConfig),
            ("model.safetensors.index.json", WeightConfig),
            ("pytorch_model.bin.index.json", WeightConfig),
            ("preprocessor_config.json", WeightConfig),
            ("processor_config.json", WeightConfig),
            ("feature_extractor_config.json", WeightConfig),
            ("image_processor_config.json", WeightConfig),
            ("chat_template.jinja", WeightConfig),
            ("chat_template.json", WeightConfig),
            ("modules.json", WeightConfig),
            ("sentence_bert_config.json", WeightConfig),
            ("config_sentence_transformers.json", WeightConfig),
            ("adapter_config.json", WeightConfig),
            ("quantize_config.json", WeightConfig),
            ("1_Pooling/config.json", WeightConfig),
            ("unet/config.json", WeightConfig),
            ("hparams.yaml", WeightConfig),
            ("params.yml", WeightConfig),
            ("settings.toml", WeightConfig),
            ("model.ini", WeightConfig),
            ("model.cfg", WeightConfig),
            ("config.pbtxt", WeightConfig),
            ("MLmodel", WeightConfig),
            ("original/params.json", WeightConfig),
        ]);
    }

    #[test]
    fn docs() {
        check(&[
            ("README.md", Doc),
            ("README", Doc),
            ("readme.txt", Doc),
            ("LICENSE", Doc),
            ("LICENSE.txt", Doc),
            ("LICENCE", Doc),
            ("LICENSE-MIT", Doc),
            ("NOTICE", Doc),
            ("COPYING", Doc),
            ("CHANGELOG.md", Doc),
            ("USE_POLICY.md", Doc),
            ("MODEL_CARD.md", Doc),
            ("docs/usage.rst", Doc),
            ("notes.txt", Doc),
            ("paper.pdf", Doc),
            ("card.html", Doc),
            ("assets/figure.png", Doc),
            ("images/arch.JPG", Doc),
            ("logo.svg", Doc),
            ("eval_results.csv", Doc),
            ("samples.jsonl", Doc),
            ("results/metrics.tsv", Doc),
        ]);
    }

    #[test]
    fn code() {
        check(&[
            ("modeling_custom.py", Code),
            ("scripts/run.sh", Code),
            ("install.bash", Code),
            ("demo.ipynb", Code),
            ("index.js", Code),
            ("web/app.ts", Code),
            ("main.go", Code),
            ("lib.rs", Code),
            ("kernels/attn.cu", Code),
            ("src/ops.cpp", Code),
            ("src/ops.h", Code),
            ("Main.java", Code),
            ("analysis.R", Code),
            ("run.ps1", Code),
            ("run.bat", Code),
            ("requirements.txt", Code),
            ("requirements-dev.txt", Code),
            ("Dockerfile", Code),
            ("Dockerfile.cuda", Code),
            ("Makefile", Code),
            ("setup.cfg", Code),
            ("pyproject.toml", Code),
            ("environment.yml", Code),
            ("kernels/libattn.so", Code),
        ]);
    }

    #[test]
    fn datasets_inside_and_outside_data_folders() {
        check(&[
            ("data/train.csv", Dataset),
            ("data/train.jsonl", Dataset),
            ("dataset/part-0.tsv", Dataset),
            ("datasets/squad/dev.json.gz", Dataset),
            ("train/shard-000.tar", Dataset),
            ("eval/x.csv.gz", Dataset),
            ("a/b/validation/c.avro", Dataset),
            ("VAL/x.orc", Dataset),
            ("Data/Train.CSV", Dataset),
            ("test/data.jsonl.gz", Dataset),
            // Always data, wherever they are.
            ("train-00000-of-00001.parquet", Dataset),
            ("cache.arrow", Dataset),
            ("records.tfrecord", Dataset),
            ("frame.feather", Dataset),
            // Outside a data directory.
            ("train.csv", Doc),
            ("data.jsonl", Doc),
            ("mydata/x.csv", Doc),
            ("x.json.gz", Doc),
            // Inside a data directory but not a data format.
            ("data/README.md", Doc),
            ("data/config.json", WeightConfig),
            ("data/prepare.py", Code),
            ("test/model.safetensors", Weight),
        ]);
    }

    #[test]
    fn unknown_files_are_docs() {
        check(&[
            ("run", Doc),
            ("weird.xyz", Doc),
            (".gitattributes", Doc),
            ("Modelfile", Doc),
            ("", Doc),
            ("dir/", Doc),
        ]);
    }

    #[test]
    fn case_insensitive() {
        check(&[
            ("MODEL.SAFETENSORS", Weight),
            ("Config.JSON", WeightConfig),
            ("ReadMe.MD", Doc),
            ("SCRIPT.PY", Code),
            ("DATASET/X.PARQUET", Dataset),
            ("Tokenizer.Model", WeightConfig),
        ]);
    }
}
