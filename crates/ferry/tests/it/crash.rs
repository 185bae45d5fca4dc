//! A pack killed at any moment leaves a store that fsck accepts and prune
//! cleans; nothing half-written is ever named.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

const RUNS: usize = 10;

#[test]
fn sigkill_during_pack_leaves_a_consistent_store() {
    let dir = tempdir();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("config.json"), "{\"model_type\":\"crash\"}\n").unwrap();
    for shard in 1..=4u64 {
        write_random_file(
            &model.join(format!("model-{shard:05}-of-00004.bin")),
            100 << 20,
            shard,
        );
    }
    let source = tree(&model);
    let reference = "localhost:5000/crash:v1";

    // A clean pack elsewhere says what the digest must be and how long a
    // pack takes, so the kills land inside one.
    let started = Instant::now();
    let expected = Ferry::new(dir.path().join("reference-store")).pack(&model, reference);
    let duration = started.elapsed();
    let window_ms = (duration.as_millis() as u64).clamp(50, 1500);

    let ferry = Ferry::new(dir.path().join("store"));
    let mut rng = Lcg::new(0x00C0_FFEE);
    let mut killed = 0;
    for run in 0..RUNS {
        let delay = Duration::from_millis(rng.below(window_ms + 1));
        let child = KillOnDrop::spawn(ferry.command(&["pack", s(&model), "-t", reference]));
        std::thread::sleep(delay);
        let output = child.kill();
        match output.status.signal() {
            Some(9) => killed += 1,
            _ => assert_success(&output, "a pack that finished before the kill"),
        }

        let fsck = ferry.run(&["fsck", "--json"]);
        assert_success(&fsck, &format!("fsck after kill {run} at {delay:?}"));
        let report: Value = serde_json::from_slice(&fsck.stdout).unwrap();
        assert_eq!(report["clean"], true, "{report}");
        assert_eq!(report["corrupt"], Value::Array(vec![]), "{report}");
        assert_eq!(report["missing"], Value::Array(vec![]), "{report}");
        // Whatever is named is the complete artifact.
        for (name, digest) in ferry.listed() {
            assert_eq!(
                (name.as_str(), digest.as_str()),
                (reference, expected.as_str())
            );
        }
        ferry.ok(&["ls"]);
    }
    eprintln!(
        "{killed} of {RUNS} packs were killed mid-way (a pack takes {duration:?}, kills within {window_ms} ms)"
    );
    assert!(killed > 0, "no kill landed inside a pack");

    let pruned = ferry.json(&["prune", "--json"]);
    assert_eq!(pruned["dryRun"], false);
    assert_tmp_empty(&ferry.store);
    let report = ferry.json(&["fsck", "--json"]);
    assert_eq!(report["leftovers"], 0, "{report}");
    assert_eq!(report["unreferenced"], Value::Array(vec![]), "{report}");
    let layout = names(&ferry.store.join("artifacts"));
    assert_eq!(
        layout.into_iter().collect::<Vec<_>>(),
        ["blobs", "index.json", "oci-layout"],
        "no debris beside the layout"
    );

    assert_eq!(ferry.pack(&model, reference), expected);
    ferry.ok(&["fsck"]);
    let out = dir.path().join("out");
    ferry.ok(&["extract", reference, s(&out)]);
    assert_same_tree(&source, &tree(&out));
}
