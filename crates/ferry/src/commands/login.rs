//! `ferry login` and `ferry logout`: credentials in Docker's config.json.

use std::io::{IsTerminal, Read};

use anyhow::{Context, bail};
use ferry_registry::client::{Access, Endpoint};
use ferry_registry::credentials::{DockerConfig, Secret};
use ferry_registry::{Client, ClientError, ClientOptions};

use super::transfer::runtime;
use crate::cli::{LoginArgs, LogoutArgs};
use crate::exit::{Exit, usage_error};

pub fn login(args: &LoginArgs) -> anyhow::Result<Exit> {
    let registry = args.registry.trim_end_matches('/');
    let password = read_password(args)?;
    // Check the credentials against the registry before saving them.
    let mut config = DockerConfig::load_default()?;
    let mut probe = DockerConfig::load(
        std::env::temp_dir().join(format!("ferry-login-{}.json", std::process::id())),
    )?;
    probe.store_login_in_memory(registry, &args.username, &password);
    let client = Client::new(ClientOptions {
        plain_http: args.transport.plain_http,
        insecure: args.transport.insecure,
        ca_file: args.transport.ca_file.clone(),
        docker_config: Some(probe),
        ..ClientOptions::default()
    });
    let endpoint = Endpoint {
        registry: registry.to_string(),
        repository: "ferry-login-check".to_string(),
    };
    match runtime()?.block_on(client.check_login(&endpoint, Access::Pull)) {
        Ok(()) => {}
        // The registry's "run ferry login" advice is what the user just did.
        Err(ClientError::Unauthorized { .. }) => bail!(
            "{registry} refused the credentials of {}: check the user name and password",
            args.username
        ),
        Err(other) => return Err(other.into()),
    }
    config.store_login(registry, &args.username, &password)?;
    println!("login succeeded for {registry}");
    Ok(Exit::Ok)
}

/// The password from stdin with `--password-stdin`, else asked for on the
/// terminal (never from the command line, where other users could see it).
fn read_password(args: &LoginArgs) -> anyhow::Result<Secret> {
    let password = if args.password_stdin {
        let mut password = String::new();
        std::io::stdin()
            .read_to_string(&mut password)
            .context("reading the password from stdin")?;
        password.trim_end_matches(['\n', '\r']).to_string()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!(
            "Password for {} at {}: ",
            args.username, args.registry
        ))
        .context("reading the password from the terminal")?
    } else {
        return Err(usage_error(
            &["login"],
            "stdin is not a terminal to ask for the password on: pass it on stdin with --password-stdin",
        ));
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(Secret::new(password))
}

pub fn logout(args: &LogoutArgs) -> anyhow::Result<Exit> {
    let mut config = DockerConfig::load_default()?;
    if config.remove_login(&args.registry)? {
        println!("removed login for {}", args.registry);
        Ok(Exit::Ok)
    } else {
        bail!("not logged in to {}", args.registry)
    }
}
