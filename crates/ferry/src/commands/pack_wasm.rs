//! `ferry pack --wasm FILE`: a Wasm module or component as a Wasm OCI artifact.

use std::time::Instant;

use ferry_store::Store;
use ferry_store::index::normalize_reference;
use ferry_store::pack::wasm::{WasmLayerType, WasmOptions, pack_wasm_with_progress};

use super::pack::{finish, source_date_epoch};
use crate::cli::{PackArgs, WasmLayerTypeArg};
use crate::exit::{Exit, usage_error};
use crate::progress::Bar;

pub fn run(store: &Store, args: &PackArgs, quiet: bool) -> anyhow::Result<Exit> {
    let Some(path) = &args.wasm else {
        return Err(usage_error(&["pack"], "--wasm needs a FILE"));
    };
    let reference = normalize_reference(&args.reference)?;
    let options = options(args)?;
    let bar = Bar::new(quiet, "packing");
    let started = Instant::now();
    let result = pack_wasm_with_progress(store, path, &reference, &options, &bar);
    bar.finish();
    let packed = result?;
    if !quiet {
        let info = &packed.info;
        match &info.component {
            Some(component) => eprintln!(
                "{}: component, platform {}/wasm (imports: {}, exports: {})",
                path.display(),
                info.os,
                component.imports.len(),
                component.exports.len()
            ),
            None if info.wasi_imports => {
                eprintln!("{}: core module, platform {}/wasm", path.display(), info.os)
            }
            // oci-wasm's convention: `os` must be set and plain Wasm has no
            // GOOS of its own, so it is filed under wasip1.
            None => eprintln!(
                "note: {} imports nothing from WASI; packed as plain wasm with platform {}/wasm",
                path.display(),
                info.os
            ),
        }
    }
    // --sign-key conflicts with --wasm (clap refuses it): nothing to sign here.
    finish(store, args, path, packed.packed, None, started, quiet)
}

/// Model metadata flags conflict with `--wasm` (clap refuses them); only
/// `--author` and `--created` reach the config.
fn options(args: &PackArgs) -> anyhow::Result<WasmOptions> {
    let created = match &args.created {
        Some(value) => Some(value.clone()),
        None => source_date_epoch()?,
    };
    let author = match args.metadata.author.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        _ => {
            return Err(usage_error(
                &["pack"],
                "--wasm takes one --author (the Wasm config has a single author field)",
            ));
        }
    };
    Ok(WasmOptions {
        created,
        author,
        link: args.link,
        layer_type: match args.wasm_layer_type {
            None | Some(WasmLayerTypeArg::Wasm) => WasmLayerType::Wasm,
            Some(WasmLayerTypeArg::WasmToOci) => WasmLayerType::WasmToOci,
        },
    })
}
