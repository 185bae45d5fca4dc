//! Where reads go: the mirrors `registries.toml` names for a repository, in
//! order, then the registry itself. Every read (`pull`, `pull --extract`,
//! `fetch`, a `copy` source, `discover`) resolves through [`ReadSources`];
//! writes (and the reads a write depends on) go to the origin only.

use crate::client::{Client, Endpoint};
use crate::error::{ClientError, Result};

/// The places a repository's content can be read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSources {
    mirrors: Vec<Endpoint>,
    origin: Endpoint,
}

impl Client {
    /// The sources of `origin`'s repository: its mirrors (from the most
    /// specific `registries.toml` entry), then `origin`.
    pub fn read_sources(&self, origin: &Endpoint) -> ReadSources {
        let mirrors = self
            .options()
            .registries
            .entry_for(&origin.registry, &origin.repository)
            .map(|entry| {
                entry
                    .mirrors
                    .iter()
                    .map(|mirror| mirror.trim_end_matches('/'))
                    .filter(|mirror| !mirror.is_empty() && *mirror != origin.registry)
                    .map(|mirror| Endpoint {
                        registry: mirror.to_string(),
                        repository: origin.repository.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        ReadSources {
            mirrors,
            origin: origin.clone(),
        }
    }
}

impl ReadSources {
    /// The registry itself.
    pub fn origin(&self) -> &Endpoint {
        &self.origin
    }

    /// Every source, mirrors first.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.mirrors.iter().chain(std::iter::once(&self.origin))
    }

    /// The sources from position `first` on: once a manifest came from a
    /// source, its blobs are read there first.
    pub fn from_position(&self, first: usize) -> ReadSources {
        ReadSources {
            mirrors: self.mirrors.get(first..).unwrap_or_default().to_vec(),
            origin: self.origin.clone(),
        }
    }

    /// Runs `read` against each source in turn until one succeeds; returns
    /// the result and the source's position. A source that fails as a
    /// registry can (down, missing the content, sending bad content) gives
    /// way to the next; a local failure stops at once. The origin's error
    /// is the one reported.
    pub async fn first<T>(
        &self,
        mut read: impl AsyncFnMut(&Endpoint) -> Result<T>,
    ) -> Result<(usize, T)> {
        for (position, mirror) in self.mirrors.iter().enumerate() {
            match read(mirror).await {
                Ok(value) => return Ok((position, value)),
                Err(error) if error.is_from_registry() => {
                    tracing::warn!(
                        "mirror {}: {error}; trying the next source",
                        mirror.registry
                    );
                }
                Err(error) => return Err(error),
            }
        }
        let value = read(&self.origin).await?;
        Ok((self.mirrors.len(), value))
    }
}

impl ReadSources {
    /// [`ReadSources::first`] for something that may not exist (a signature
    /// tag): `None` when the origin says it does not exist, or when a
    /// mirror said so and the origin cannot be reached (a down origin
    /// must not fail a read the mirrors answered).
    pub async fn first_optional<T>(
        &self,
        mut read: impl AsyncFnMut(&Endpoint) -> Result<T>,
    ) -> Result<Option<(usize, T)>> {
        let mut a_mirror_lacks_it = false;
        for (position, mirror) in self.mirrors.iter().enumerate() {
            match read(mirror).await {
                Ok(value) => return Ok(Some((position, value))),
                Err(ClientError::NotFound(_)) => a_mirror_lacks_it = true,
                Err(error) if error.is_from_registry() => {
                    tracing::warn!(
                        "mirror {}: {error}; trying the next source",
                        mirror.registry
                    );
                }
                Err(error) => return Err(error),
            }
        }
        match read(&self.origin).await {
            Ok(value) => Ok(Some((self.mirrors.len(), value))),
            Err(ClientError::NotFound(_)) => Ok(None),
            Err(error @ ClientError::Unreachable { .. }) if a_mirror_lacks_it => {
                tracing::warn!("{error}; a mirror had none, taking that answer");
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientOptions;
    use crate::error::Missing;

    fn sources() -> ReadSources {
        let registries = toml::from_str(
            "[[registry]]\nlocation = \"origin.io\"\nmirrors = [\"m1:5000\", \"m2:5000/\", \"origin.io\"]\n",
        )
        .unwrap();
        let client = Client::new(ClientOptions {
            registries,
            ..ClientOptions::default()
        });
        client.read_sources(&Endpoint {
            registry: "origin.io".into(),
            repository: "org/m".into(),
        })
    }

    #[test]
    fn mirrors_come_first_and_the_origin_last() {
        let sources = sources();
        let names: Vec<&str> = sources.endpoints().map(|e| e.registry.as_str()).collect();
        assert_eq!(names, ["m1:5000", "m2:5000", "origin.io"]);
        assert!(sources.endpoints().all(|e| e.repository == "org/m"));
        let later: Vec<String> = sources
            .from_position(1)
            .endpoints()
            .map(|e| e.registry.clone())
            .collect();
        assert_eq!(later, ["m2:5000", "origin.io"]);
        assert_eq!(sources.from_position(9).endpoints().count(), 1);
    }

    #[tokio::test]
    async fn registry_failures_fall_through_and_local_ones_stop() {
        let sources = sources();
        let missing =
            |e: &Endpoint| ClientError::NotFound(Missing::Other(format!("x at {}", e.registry)));
        let found = sources
            .first(async |e| {
                if e.registry == "m2:5000" {
                    Ok(e.registry.clone())
                } else {
                    Err(missing(e))
                }
            })
            .await
            .unwrap();
        assert_eq!(found, (1, "m2:5000".to_string()));

        let error = sources
            .first(async |e| -> Result<()> { Err(missing(e)) })
            .await
            .unwrap_err();
        assert!(error.to_string().contains("origin.io"), "{error}");

        let mut asked = 0;
        let local = sources
            .first(async |_| -> Result<()> {
                asked += 1;
                Err(ClientError::invalid_input("bad"))
            })
            .await;
        assert!(local.is_err());
        assert_eq!(asked, 1, "a local failure is not tried elsewhere");
    }

    #[tokio::test]
    async fn an_optional_read_takes_a_mirrors_no_when_the_origin_is_down() {
        let sources = sources();
        let missing = |e: &Endpoint| ClientError::NotFound(Missing::Other(e.registry.clone()));
        let down = |e: &Endpoint| ClientError::Unreachable {
            registry: e.registry.clone(),
            cause: crate::error::NetCause::Refused,
            source: "refused".into(),
        };
        let absent = sources
            .first_optional(async |e| -> Result<()> {
                if e.registry == "origin.io" {
                    Err(down(e))
                } else {
                    Err(missing(e))
                }
            })
            .await
            .unwrap();
        assert!(absent.is_none());
        let found = sources
            .first_optional(async |e| {
                if e.registry == "origin.io" {
                    Ok(7)
                } else {
                    Err(down(e))
                }
            })
            .await
            .unwrap();
        assert_eq!(found, Some((2, 7)));
        let error = sources
            .first_optional(async |e| -> Result<()> { Err(down(e)) })
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("origin.io"),
            "no source answered: {error}"
        );
    }
}
