//! Many ferry processes on one store at once: packs, rm and prune loops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::*;

const PACKS: u64 = 6;

#[test]
fn parallel_packs_rm_and_prune_keep_the_store_consistent() {
    let mut models = Vec::new();
    for seed in 0..PACKS {
        models.push(gen_model(100 + seed, 1));
    }
    let dir = tempdir();
    let ferry = Ferry::new(dir.path().join("store"));
    let old = dir.path().join("old");
    tiny_model(&old, 99);
    ferry.pack(&old, "localhost:5000/old:v0");

    // prune in a loop from another thread until the packs are done.
    let done = Arc::new(AtomicBool::new(false));
    let pruner = {
        let ferry = ferry.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut outputs = Vec::new();
            while !done.load(Ordering::Relaxed) || outputs.len() < 3 {
                outputs.push(ferry.run(&["prune"]));
                std::thread::sleep(Duration::from_millis(20));
            }
            outputs
        })
    };
    let packs: Vec<(String, KillOnDrop)> = models
        .iter()
        .enumerate()
        .map(|(i, model)| {
            let reference = format!("localhost:5000/model-{i}:v1");
            let child = KillOnDrop::spawn(ferry.command(&["pack", s(model), "-t", &reference]));
            (reference, child)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let rm = KillOnDrop::spawn(ferry.command(&["rm", "localhost:5000/old:v0"]));

    let mut digests = Vec::new();
    for (reference, child) in packs {
        let output = child.wait();
        assert_success(&output, &format!("pack {reference}"));
        let digest = parse_pack_line(&String::from_utf8(output.stdout).unwrap(), &reference);
        digests.push((reference, digest));
    }
    assert_success(&rm.wait(), "concurrent rm");
    done.store(true, Ordering::Relaxed);
    let prunes = pruner.join().expect("prune thread");
    for output in &prunes {
        assert_success(output, "concurrent prune");
    }

    let listed = ferry.listed();
    assert_eq!(listed.len(), PACKS as usize, "{listed:?}");
    assert!(!listed.contains_key("localhost:5000/old:v0"));
    for (reference, digest) in &digests {
        assert_eq!(listed.get(reference), Some(digest), "{reference}");
    }
    let report = ferry.json(&["fsck", "--json"]);
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(report["unreferenced"], serde_json::json!([]), "{report}");
    assert_eq!(report["leftovers"], 0, "{report}");
    ferry.ok(&["fsck"]);
    for ((reference, _), model) in digests.iter().zip(&models) {
        let out = dir
            .path()
            .join(format!("out-{}", reference.replace(['/', ':'], "_")));
        ferry.ok(&["extract", reference, s(&out)]);
        assert_same_tree(&tree(model), &tree(&out));
    }
}
