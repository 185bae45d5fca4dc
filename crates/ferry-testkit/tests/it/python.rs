//! The shards load with the reference implementation, Python's
//! `safetensors` (skipped with a note outside CI when it is missing).

use std::process::Command;

use ferry_testkit::{Dtype, MIB, ModelSpec, generate, require_python};

const CHECK: &str = r#"
import json, sys
from safetensors import safe_open
out, dtype = sys.argv[1], sys.argv[2]
index = json.load(open(out + "/model.safetensors.index.json"))["weight_map"]
seen = {}
for shard in sorted(set(index.values())):
    with safe_open(out + "/" + shard, framework="numpy") as f:
        assert f.metadata() == {"format": "pt"}, f.metadata()
        for name in f.keys():
            seen[name] = shard
            s = f.get_slice(name)
            assert s.get_dtype() == dtype, (name, s.get_dtype())
        if dtype == "F32":
            for name in f.keys():
                x = f.get_tensor(name)
                want = (1.0, 0.05) if name.endswith("norm.weight") else (0.0, 0.02)
                # Norm weights are short vectors: allow their sampling noise.
                slack = 0.02 if x.size >= 65536 else 0.25
                assert abs(x.mean() - want[0]) < 0.01, (name, x.mean())
                assert abs(x.std() - want[1]) < slack * want[1], (name, x.std())
assert seen == index, "index and shards disagree"
print(len(seen))
"#;

fn check(dtype: Dtype) {
    if !require_python(&["safetensors", "numpy"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::new(2 * MIB).shards(2).seed(11).dtype(dtype);
    let model = generate(dir.path(), &spec).unwrap();
    let output = Command::new("python3")
        .args(["-c", CHECK])
        .arg(dir.path())
        .arg(dtype.safetensors_name())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python rejected the model:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let count: usize = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(count, model.plan.tensors.len());
}

#[test]
fn bf16_shards_open_with_python_safetensors() {
    check(Dtype::Bf16);
}

#[test]
fn f32_shards_load_with_python_safetensors() {
    check(Dtype::F32);
}
