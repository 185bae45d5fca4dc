//! What a test needs from the machine: root, external tools, the data
//! vectors in `shared/`. Under `CI=true` a missing component fails the
//! test; elsewhere the test prints a note on stderr and skips (the caller
//! returns early when a check answers `false`).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// True when `CI=true`: a missing component then fails the test.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// True when `available`; otherwise panics under CI and prints a skip note
/// elsewhere (the caller returns early). The note goes straight to the
/// process's stderr, so it shows even when the test harness captures
/// output.
pub fn require(component: &str, available: bool) -> bool {
    if available {
        return true;
    }
    assert!(
        !in_ci(),
        "{component} is required when CI=true, but it is missing"
    );
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    let _ = writeln!(
        io::stderr().lock(),
        "note: skipping {test}: {component} is missing"
    );
    false
}

/// True when this process runs as root.
pub fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// True when `program args` runs and exits 0 (its output discarded).
pub fn command_works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True when `python3` can import every module in `modules`.
pub fn python_has(modules: &[&str]) -> bool {
    command_works(
        "python3",
        &["-c", &format!("import {}", modules.join(", "))],
    )
}

/// Root, needed for mounts and for switching users; `why` goes into the note.
pub fn require_root(why: &str) -> bool {
    require(&format!("root ({why})"), is_root())
}

/// Root and `setpriv`, to run a program as another user.
pub fn require_setpriv() -> bool {
    require_root("to run ferry as another user")
        && require("setpriv", command_works("setpriv", &["--version"]))
}

/// `skopeo`, a real OCI client.
pub fn require_skopeo() -> bool {
    require("skopeo", command_works("skopeo", &["--version"]))
}

/// `python3` able to import `modules` (named in the note).
pub fn require_python(modules: &[&str]) -> bool {
    require(
        &format!("python3 with {}", modules.join(", ")),
        python_has(modules),
    )
}

/// Where the development data lives: `$FERRY_SHARED_DIR` when set, else
/// `shared/` beside the workspace root. Tests only read from it (the ModelPack
/// schema and vectors, the signing vectors); nothing there is run.
pub fn shared_root() -> PathBuf {
    match std::env::var_os("FERRY_SHARED_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        // crates/ferry-testkit -> crates -> the workspace -> its parent.
        _ => match Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(3) {
            Some(beside_workspace) => beside_workspace.join("shared"),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        },
    }
}

/// `rel` inside [`shared_root`] when it exists. Otherwise `None` after a
/// skip note, or a panic under `CI=true` (CI lays `shared/` beside the clone).
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    let path = shared_root().join(rel);
    require(
        &format!(
            "shared data at {} (FERRY_SHARED_DIR names the shared/ folder)",
            path.display()
        ),
        path.exists(),
    )
    .then_some(path)
}
