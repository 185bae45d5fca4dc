//! The non-weight files of a generated model: configs, tokenizer, index,
//! README, LICENSE and a small Python module. JSON objects are written with
//! sorted keys and two-space indents, as `transformers` writes them.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::model::{ModelSpec, Plan, Tensor, VOCAB, text_rng};

/// About the size of a real Llama tokenizer.json.
const TOKENIZER_BYTES: usize = 2_000_000;

/// (relative path, contents) of every file besides the weight shards.
pub(crate) fn text_files(
    plan: &Plan,
    spec: &ModelSpec,
    shard_files: &[String],
) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if shard_files.len() > 1 {
        out.push(("model.safetensors.index.json".into(), index(plan)));
    }
    out.push(("config.json".into(), config(plan, spec)));
    out.push((
        "generation_config.json".into(),
        pretty(&json!({
            "_from_model_config": true,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "max_length": 4096,
            "pad_token_id": 0,
            "temperature": 0.6,
            "top_p": 0.9,
            "transformers_version": "4.44.0",
        })),
    ));
    out.push((
        "tokenizer_config.json".into(),
        pretty(&json!({
            "add_bos_token": true,
            "add_eos_token": false,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "pad_token": null,
            "clean_up_tokenization_spaces": false,
            "legacy": false,
            "model_max_length": 4096,
            "padding_side": "right",
            "sp_model_kwargs": {},
            "tokenizer_class": "LlamaTokenizer",
            "chat_template": "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token }}{% endfor %}",
        })),
    ));
    out.push((
        "special_tokens_map.json".into(),
        pretty(&json!({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})),
    ));
    out.push(("tokenizer.json".into(), tokenizer(spec.seed)));
    out.push(("README.md".into(), readme(plan, spec).into_bytes()));
    out.push(("LICENSE".into(), LICENSE.as_bytes().to_vec()));
    out.push((
        "configuration_synthetic.py".into(),
        PYTHON_MODULE.as_bytes().to_vec(),
    ));
    out
}

fn pretty(value: &Value) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(value).unwrap_or_default();
    text.push(b'\n');
    text
}

fn index(plan: &Plan) -> Vec<u8> {
    let mut weight_map = Map::new();
    for (s, indices) in plan.shards.iter().enumerate() {
        for &i in indices {
            weight_map.insert(plan.tensors[i].name.clone(), plan.shard_name(s).into());
        }
    }
    pretty(&json!({
        "metadata": {"total_size": plan.weight_bytes()},
        "weight_map": weight_map,
    }))
}

fn config(plan: &Plan, spec: &ModelSpec) -> Vec<u8> {
    let a = &plan.arch;
    pretty(&json!({
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": false,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": a.hidden,
        "initializer_range": 0.02,
        "intermediate_size": a.intermediate,
        "max_position_embeddings": 4096,
        "model_type": "llama",
        "num_attention_heads": a.heads,
        "num_hidden_layers": a.layers,
        "num_key_value_heads": a.kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": null,
        "rope_theta": 10000.0,
        "tie_word_embeddings": false,
        "torch_dtype": spec.dtype.torch_name(),
        "transformers_version": "4.44.0",
        "use_cache": true,
        "vocab_size": a.vocab,
        "auto_map": {"AutoConfig": "configuration_synthetic.SyntheticLlamaConfig"},
        "synthetic_seed": spec.seed,
    }))
}

fn readme(plan: &Plan, spec: &ModelSpec) -> String {
    let params: u64 = plan.tensors.iter().map(Tensor::numel).sum();
    format!(
        "---\nlicense: apache-2.0\nlibrary_name: transformers\npipeline_tag: text-generation\n\
         tags: [synthetic, benchmark]\n---\n\n# Synthetic Llama-style model (seed {seed})\n\n\
         Random {dtype} weights N(0, 0.02); {layers} layers, hidden {hidden}, {billions:.3} B \
         parameters, {shards} shard(s).\nNot a trained model: for packaging and transfer \
         benchmarks only.\n",
        seed = spec.seed,
        dtype = spec.dtype,
        layers = plan.arch.layers,
        hidden = plan.arch.hidden,
        billions = params as f64 / 1e9,
        shards = plan.shards.len(),
    )
}

/// A BPE tokenizer.json of about 2 MB: specials, byte fallbacks, random
/// word pieces, then random merges until the size is reached.
fn tokenizer(seed: u64) -> Vec<u8> {
    const LETTERS: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz\
          ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = text_rng(seed);
    let specials = ["<unk>", "<s>", "</s>"];
    let mut vocab = Map::new();
    let mut words = Vec::new();
    let mut seen = BTreeSet::new();
    for t in specials {
        vocab.insert(t.into(), vocab.len().into());
    }
    for b in 0..256 {
        vocab.insert(format!("<0x{b:02X}>"), vocab.len().into());
    }
    while (vocab.len() as u64) < VOCAB {
        let len = ((-5.0 * (1.0 - rng.uniform()).ln()) as usize).max(1);
        let mut word = String::new();
        if rng.uniform() < 0.45 {
            word.push('\u{2581}');
        }
        for _ in 0..len {
            word.push(char::from(LETTERS[rng.below(LETTERS.len())]));
        }
        if seen.insert(word.clone()) {
            vocab.insert(word.clone(), vocab.len().into());
            words.push(word);
        }
    }
    let added: Vec<Value> = specials
        .iter()
        .enumerate()
        .map(|(id, t)| {
            json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let mut doc = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u{2581}"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}]},
        "pre_tokenizer": null,
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>",
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": true, "byte_fallback": true, "vocab": vocab, "merges": []},
    });
    let mut size = pretty(&doc).len();
    let mut merges = Vec::new();
    while size < TOKENIZER_BYTES {
        let merge = format!(
            "{} {}",
            words[rng.below(words.len())],
            words[rng.below(words.len())]
        );
        // Six spaces of indent, two quotes, a comma and a newline.
        size += merge.len() + 10;
        merges.push(Value::String(merge));
    }
    doc["model"]["merges"] = Value::Array(merges);
    pretty(&doc)
}

const LICENSE: &str = r#"                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   Synthetic benchmark model. Licensed under the Apache License, Version 2.0
   (the "License"); you may not use this file except in compliance with the
   License. You may obtain a copy of the License at

       http://www.apache.org/licenses/LICENSE-2.0

   Unless required by applicable law or agreed to in writing, software
   distributed under the License is distributed on an "AS IS" BASIS,
   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
   See the License for the specific language governing permissions and
   limitations under the License.
"#;

const PYTHON_MODULE: &str = r#""""Custom configuration for the synthetic benchmark model (trust_remote_code style)."""
from transformers import LlamaConfig


class SyntheticLlamaConfig(LlamaConfig):
    model_type = "synthetic_llama"

    def __init__(self, synthetic_seed=0, **kwargs):
        self.synthetic_seed = synthetic_seed
        super().__init__(**kwargs)
"#;
