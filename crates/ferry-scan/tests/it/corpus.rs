//! The corpus: malicious pickles of every protocol and trick (REDUCE of
//! os.system, builtins.eval, getattr chains, STACK_GLOBAL through the memo,
//! protocol 0 text, EXT opcodes, a pickle inside a torch zip, concatenated
//! pickles) and benign checkpoints with the real libraries' shapes. Each is
//! scanned by ferry and, when installed (always under CI=true), by
//! picklescan; the table is printed, and ferry must flag every file
//! picklescan flags, plus the bypasses.

use std::path::Path;
use std::process::Command;

use ferry_scan::{Verdict, scan_file};

/// Writes the corpus into the directory given as argv[1]; prints
/// `name expectation` per file (dangerous, safe, suspicious).
const GENERATOR: &str = r#"
import copyreg, io, os, pickle, sys, zipfile
from collections import OrderedDict
out = sys.argv[1]
expect = {}

def put(name, data, expectation):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    expect[name] = expectation

class System:
    def __reduce__(self):
        return (os.system, ("echo pwned",))

class Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('id')",))

for protocol in range(0, 6):
    put(f"os_system_p{protocol}.pkl", pickle.dumps(System(), protocol=protocol), "dangerous")
put("builtins_eval.pkl", pickle.dumps(Eval(), protocol=2), "dangerous")

# getattr(__import__('os'), 'system')('id'), written opcode by opcode.
put("getattr_chain.pkl",
    b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'id'\ntR.",
    "dangerous")

# STACK_GLOBAL whose strings come back through the memo after a detour.
put("stack_global_memo.pkl",
    b"\x80\x04\x8c\x08builtins\x94\x8c\x04exec\x94\x8c\x05noise\x94(h\x00h\x01\x93\x8c\x05print(1)\x85R.",
    "dangerous")

# A text (protocol 0) pickle written by hand with INST.
put("inst_p0.pkl", b"(S'echo hi'\nios\nsystem\n.", "dangerous")

# EXT opcodes: a global registered with copyreg.
copyreg.add_extension("os", "system", 240)
put("ext1.pkl", pickle.dumps(os.system, protocol=2), "dangerous")
copyreg.remove_extension("os", "system", 240)

# Concatenated: a harmless pickle, then a malicious one.
put("concatenated.pkl", pickle.dumps({"a": 1}, protocol=4) + pickle.dumps(System(), protocol=4), "dangerous")

# A pickle inside a PyTorch-style zip.
def torch_zip(name, data_pkl, expectation):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/version", "3\n")
        z.writestr("archive/data/0", b"\x00" * 16)
    put(name, buffer.getvalue(), expectation)

torch_zip("malicious_torch.pt", pickle.dumps(System(), protocol=2), "dangerous")

# A real-shaped torch state dict: OrderedDict of _rebuild_tensor_v2 over a
# persistent FloatStorage, as torch.save writes it.
state = (b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x06\x00\x00\x00weightq\x02"
         b"ctorch._utils\n_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04"
         b"ctorch\nFloatStorage\nq\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x04tq\x08"
         b"QK\x00K\x04\x85q\tK\x01\x85q\n\x89h\x00)Rq\x0btq\x0cRq\rs.")
torch_zip("benign_torch.pt", state, "safe")
put("benign_legacy.bin", pickle.dumps(OrderedDict(a=(1.0, 2.0), b=[1, 2, 3]), protocol=2)
    + b"\x00\x01\x02raw storage bytes", "safe")
put("benign_p0.pkl", pickle.dumps({"lr": 0.1, "steps": [1, 2]}, protocol=0), "safe")

try:
    import numpy
    put("benign_numpy.pkl", pickle.dumps({"w": numpy.arange(6, dtype=numpy.float32)}, protocol=2), "safe")
    buffer = io.BytesIO()
    numpy.save(buffer, numpy.array([System()], dtype=object), allow_pickle=True)
    put("object_array.npy", buffer.getvalue(), "dangerous")
except ImportError:
    pass

# Bypasses of denylist scanners: callables that run commands or load
# pickles without being os, subprocess or builtins.
for name, module, function in [
    ("bypass_pydoc.pkl", "pydoc", "pipepager"),
    ("bypass_attrgetter.pkl", "_operator", "attrgetter"),
    ("bypass_runstring.pkl", "numpy.testing._private.utils", "runstring"),
    ("bypass_torch_bytes.pkl", "torch.storage", "_load_from_bytes"),
    ("bypass_asyncio.pkl", "asyncio.unix_events", "_UnixSubprocessTransport"),
    ("bypass_pip.pkl", "pip", "main"),
]:
    put(name, f"c{module}\n{function}\n(S'id'\ntR.".encode(), "dangerous")

# A protocol 0 pickle under a name that is not a pickle's.
put("pytorch_model.bin", b"cposix\nsystem\n(S'id'\ntR.", "dangerous")
put("weights.data", pickle.dumps(System(), protocol=1), "dangerous")

# Unknown but not known-dangerous: a user's own class.
put("user_class.pkl", b"\x80\x02cmyproject.models\nNet\nq\x00)\x81q\x01.", "suspicious")

for name, expectation in sorted(expect.items()):
    print(name, expectation)
"#;

fn python_has_picklescan() -> bool {
    Command::new("picklescan")
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// picklescan's verdict on a file: its exit code (0 clean, 1 dangerous,
/// 2 error).
fn picklescan(path: &Path) -> Option<i32> {
    Command::new("picklescan")
        .arg("--path")
        .arg(path)
        .output()
        .ok()
        .and_then(|o| o.status.code())
}

#[test]
fn ferry_flags_everything_picklescan_flags_and_the_bypasses() {
    if !ferry_testkit::require::require_python(&["pickle"]) {
        return;
    }
    let have_picklescan = ferry_testkit::require::require(
        "picklescan (pip install picklescan)",
        python_has_picklescan(),
    );
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new("python3")
        .arg("-c")
        .arg(GENERATOR)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the generator failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing = String::from_utf8(output.stdout).unwrap();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for line in listing.lines() {
        let (name, expectation) = line.split_once(' ').unwrap();
        let path = dir.path().join(name);
        let file = std::fs::File::open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        let report = scan_file(name, file, len).unwrap();
        let theirs = if have_picklescan {
            picklescan(&path)
        } else {
            None
        };
        let expected = match expectation {
            "dangerous" => Verdict::Dangerous,
            "suspicious" => Verdict::Suspicious,
            _ => Verdict::Safe,
        };
        if report.verdict != expected {
            failures.push(format!(
                "{name}: ferry says {:?}, expected {expected:?}: {:?}",
                report.verdict, report.findings
            ));
        }
        if theirs == Some(1) && report.verdict < Verdict::Dangerous {
            failures.push(format!(
                "{name}: picklescan flags it, ferry says {:?}",
                report.verdict
            ));
        }
        rows.push(format!(
            "{name:<24} ferry {:<11} picklescan {}",
            format!("{:?}", report.verdict).to_lowercase(),
            match theirs {
                Some(0) => "clean",
                Some(1) => "dangerous",
                Some(2) => "error",
                Some(_) => "?",
                None => "(not run)",
            }
        ));
    }
    println!("{}", rows.join("\n"));
    assert!(rows.len() >= 25, "the corpus is complete: {rows:?}");
    if have_picklescan {
        let missed = rows
            .iter()
            .filter(|r| r.contains("ferry dangerous") && r.contains("picklescan clean"))
            .count();
        println!("bypasses picklescan misses and ferry flags: {missed}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
