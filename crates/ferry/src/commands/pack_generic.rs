//! `ferry pack --generic`: any files as a plain OCI artifact.

use std::time::Instant;

use ferry_store::Store;
use ferry_store::index::normalize_reference;
use ferry_store::pack::generic::{GenericOptions, pack_generic_with_progress};

use super::pack::{finish, signing_key, source_date_epoch};
use crate::cli::PackArgs;
use crate::exit::Exit;
use crate::progress::Bar;

pub fn run(store: &Store, args: &PackArgs, quiet: bool) -> anyhow::Result<Exit> {
    let reference = normalize_reference(&args.reference)?;
    let options = options(args)?;
    let sign_key = signing_key(args)?;
    let bar = Bar::new(quiet, "packing");
    let started = Instant::now();
    let result = pack_generic_with_progress(store, args.model_dir()?, &reference, &options, &bar);
    bar.finish();
    let packed = result?;
    finish(store, args, packed, sign_key.as_ref(), started, quiet)
}

/// Model metadata flags conflict with `--generic` (clap refuses them).
fn options(args: &PackArgs) -> anyhow::Result<GenericOptions> {
    let created = match &args.created {
        Some(value) => Some(value.clone()),
        None => source_date_epoch()?,
    };
    Ok(GenericOptions {
        artifact_type: args.artifact_type.clone(),
        config: args.config.clone(),
        layer_media_type: args.media_type.clone(),
        include: args.include.clone(),
        exclude: args.exclude.clone(),
        created,
        link: args.link,
    })
}
