//! One function per command; each turns arguments into library calls.

mod convert;
mod csi;
mod fsck;
mod index;
mod init;
mod inspect;
mod login;
mod maintain;
mod model_signature;
mod mount;
mod pack;
mod pack_generic;
mod pack_wasm;
mod referrers;
mod remote;
mod scan;
mod serve;
mod sign;
mod signature;
mod transfer;

use anyhow::Context;
use ferry_store::Store;

use crate::cli::{Cli, Command};
use crate::exit::Exit;

/// Runs the parsed command line; errors are [`Exit::Error`] (or, for a
/// `clap::Error`, [`Exit::Usage`]) to the caller.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    let root = cli.store.clone().unwrap_or_else(Store::default_root);
    let quiet = cli.quiet;
    match cli.command {
        Command::Init(args) => init::run(&args),
        Command::Pack(args) if args.wasm.is_some() => {
            pack_wasm::run(&open_store(&root)?, &args, quiet)
        }
        Command::Pack(args) => {
            let dir = pack::source_dir(&args)?;
            if args.generic {
                pack_generic::run(&open_store(&root)?, &args, &dir, quiet)
            } else if args.push {
                remote::pack_push(&args, &dir, quiet)
            } else {
                pack::run(&open_store(&root)?, &args, &dir, quiet)
            }
        }
        Command::Ls(args) => inspect::ls(&read_store(&root)?, args.json),
        Command::Inspect(args) => inspect::inspect(&read_store(&root)?, &args),
        Command::Tag(args) => maintain::tag(&open_store(&root)?, &args),
        Command::Rm(args) => maintain::rm(&open_store(&root)?, &args),
        Command::Prune(args) => maintain::prune(&open_store(&root)?, &args),
        Command::Fsck(args) if args.repair => fsck::run(&open_store(&root)?, &args, quiet),
        Command::Fsck(args) => fsck::run(&read_store(&root)?, &args, quiet),
        Command::Extract(args) => maintain::extract(&read_store(&root)?, &args),
        Command::Convert(args) => convert::run(&open_store(&root)?, &args),
        Command::Serve(args) => serve::run(&root, &args),
        Command::Push(args) => transfer::push(&open_store(&root)?, &args, quiet),
        Command::Pull(args) if args.extract.is_some() => remote::pull_extract(&args, quiet),
        Command::Copy(args) => remote::copy(&args, quiet),
        Command::Fetch(args) => remote::fetch(&args, quiet),
        Command::Pull(args) => transfer::pull(&open_store(&root)?, &args, quiet),
        Command::Login(args) => login::login(&args),
        Command::Logout(args) => login::logout(&args),
        Command::Attach(args) => referrers::attach(&args, quiet),
        Command::Discover(args) => referrers::discover(&args),
        Command::Index(args) => index::run(&args),
        Command::Mount(args) => mount::mount(&open_store(&root)?, &args, quiet),
        Command::Umount(args) => mount::umount(&open_store(&root)?, &args),
        Command::Mounts(args) => mount::mounts(&open_store(&root)?, args.json),
        Command::Key(args) => match &args.command {
            crate::cli::KeyCommand::Generate(args) => sign::key_generate(args),
        },
        Command::SignModel(args) => sign::sign_model(&args),
        Command::Sign(args) => signature::sign(&open_store(&root)?, &args),
        Command::Verify(args) => signature::verify(&read_store(&root)?, &args),
        Command::VerifyModel(args) => sign::verify_model(&args),
        Command::Csi(args) => csi::run(&root, &args),
        Command::Scan(args) => scan::run(&open_store(&root)?, &args, quiet),
    }
}

/// Opens (creating if needed) a store that will be written.
fn open_store(root: &std::path::Path) -> anyhow::Result<Store> {
    Store::open(root).with_context(|| format!("cannot open store at {}", root.display()))
}

/// Opens an existing store for reading; an absent store reads as empty.
fn read_store(root: &std::path::Path) -> anyhow::Result<Store> {
    match Store::open_existing(root) {
        Ok(store) => Ok(store),
        Err(_) => open_store(root),
    }
}
