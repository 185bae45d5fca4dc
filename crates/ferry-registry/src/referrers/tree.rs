//! The tree of referrers below a subject: breadth first, with a visited
//! set and depth and size limits (fallback tags can form cycles).

use std::collections::{HashSet, VecDeque};

use ferry_spec::oci::{Descriptor, Digest};

use super::list::list_referrers;
use crate::client::{Client, Endpoint};
use crate::error::Result;

/// Deepest referrer tree [`referrer_tree`] builds, whatever it is asked.
pub const MAX_TREE_DEPTH: usize = 64;

/// Most nodes [`referrer_tree`] lists before it stops expanding.
pub const MAX_TREE_NODES: usize = 10_000;

/// A referrer and, recursively, its own referrers.
#[derive(Debug, Clone)]
pub struct ReferrerNode {
    /// The referrer.
    pub descriptor: Descriptor,
    /// Its referrers.
    pub referrers: Vec<ReferrerNode>,
    /// Already listed elsewhere in the tree (a cycle through a fallback tag,
    /// or a referrer of two subjects): not expanded again.
    pub repeated: bool,
    /// Not expanded for a limit: at the depth limit, set only when it has
    /// referrers; past [`MAX_TREE_NODES`], set without asking.
    pub truncated: bool,
}

/// Something that lists referrers: the registry, or a fake in tests.
pub(crate) trait ListReferrers {
    async fn list(&self, subject: &Digest, artifact_type: Option<&str>) -> Result<Vec<Descriptor>>;
}

struct RegistryReferrers<'a> {
    client: &'a Client,
    endpoint: &'a Endpoint,
}

impl ListReferrers for RegistryReferrers<'_> {
    async fn list(&self, subject: &Digest, artifact_type: Option<&str>) -> Result<Vec<Descriptor>> {
        Ok(
            list_referrers(self.client, self.endpoint, subject, artifact_type)
                .await?
                .descriptors,
        )
    }
}

/// The referrers of `subject` and theirs, down to `max_depth` levels (at
/// most [`MAX_TREE_DEPTH`]). `artifact_type` filters the first level only.
/// A manifest met twice (fallback tags can form cycles) is listed again but
/// not expanded again.
pub async fn referrer_tree(
    client: &Client,
    endpoint: &Endpoint,
    subject: &Digest,
    artifact_type: Option<&str>,
    max_depth: usize,
) -> Result<Vec<ReferrerNode>> {
    build_tree(
        &RegistryReferrers { client, endpoint },
        subject,
        artifact_type,
        max_depth,
    )
    .await
}

struct FlatNode {
    descriptor: Descriptor,
    children: Vec<usize>,
    repeated: bool,
    truncated: bool,
}

pub(crate) async fn build_tree(
    lister: &impl ListReferrers,
    subject: &Digest,
    artifact_type: Option<&str>,
    max_depth: usize,
) -> Result<Vec<ReferrerNode>> {
    let max_depth = max_depth.clamp(1, MAX_TREE_DEPTH);
    let mut nodes: Vec<FlatNode> = Vec::new();
    let mut seen: HashSet<Digest> = HashSet::from([subject.clone()]);
    let mut add = |nodes: &mut Vec<FlatNode>, descriptor: Descriptor| {
        let repeated = !seen.insert(descriptor.digest().clone());
        nodes.push(FlatNode {
            descriptor,
            children: Vec::new(),
            repeated,
            truncated: false,
        });
        nodes.len() - 1
    };
    let mut roots = Vec::new();
    let mut queue = VecDeque::new();
    for descriptor in lister.list(subject, artifact_type).await? {
        let index = add(&mut nodes, descriptor);
        roots.push(index);
        queue.push_back((index, 1usize));
    }
    // Breadth first, so a manifest met twice is expanded where it is shallowest.
    while let Some((index, depth)) = queue.pop_front() {
        if nodes[index].repeated {
            continue;
        }
        let digest = nodes[index].descriptor.digest().clone();
        if nodes.len() >= MAX_TREE_NODES {
            // Too big to list: stop asking the registry at all.
            nodes[index].truncated = true;
            continue;
        }
        if depth >= max_depth {
            // Only say "more below" when there is more below.
            nodes[index].truncated = !lister.list(&digest, None).await?.is_empty();
            continue;
        }
        for descriptor in lister.list(&digest, None).await? {
            let child = add(&mut nodes, descriptor);
            nodes[index].children.push(child);
            queue.push_back((child, depth + 1));
        }
    }
    let mut slots: Vec<Option<FlatNode>> = nodes.into_iter().map(Some).collect();
    Ok(roots
        .into_iter()
        .filter_map(|root| assemble(&mut slots, root))
        .collect())
}

/// Turns the flat nodes into a tree (recursion bounded by the depth limit).
fn assemble(slots: &mut [Option<FlatNode>], index: usize) -> Option<ReferrerNode> {
    let node = slots.get_mut(index)?.take()?;
    Some(ReferrerNode {
        descriptor: node.descriptor,
        referrers: node
            .children
            .into_iter()
            .filter_map(|child| assemble(slots, child))
            .collect(),
        repeated: node.repeated,
        truncated: node.truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::referrers::list::retain_artifact_type;
    use std::cell::RefCell;
    use std::collections::HashMap;

    use crate::referrers::fixtures::{descriptor, digest};

    /// A referrer graph in memory.
    struct Graph(HashMap<Digest, Vec<Descriptor>>, RefCell<usize>);

    impl ListReferrers for Graph {
        async fn list(
            &self,
            subject: &Digest,
            artifact_type: Option<&str>,
        ) -> Result<Vec<Descriptor>> {
            *self.1.borrow_mut() += 1;
            let mut out = self.0.get(subject).cloned().unwrap_or_default();
            if let Some(t) = artifact_type {
                retain_artifact_type(&mut out, t);
            }
            Ok(out)
        }
    }

    #[tokio::test]
    async fn trees_survive_cycles_and_stop_at_the_depth_limit() {
        // 0 <- 1 <- 2 <- 3, and a fallback tag claiming 0 refers to 2 (a cycle).
        let mut edges = HashMap::new();
        edges.insert(digest(0), vec![descriptor(1, Some("application/vnd.sig"))]);
        edges.insert(digest(1), vec![descriptor(2, None)]);
        edges.insert(digest(2), vec![descriptor(3, None), descriptor(0, None)]);
        let graph = Graph(edges, RefCell::new(0));
        let tree = build_tree(&graph, &digest(0), None, 10).await.unwrap();
        assert_eq!(tree.len(), 1);
        let two = &tree[0].referrers[0];
        assert_eq!(two.descriptor.digest(), &digest(2));
        let children: Vec<_> = two
            .referrers
            .iter()
            .map(|n| n.descriptor.digest())
            .collect();
        assert_eq!(children, vec![&digest(3), &digest(0)]);
        assert!(
            two.referrers[1].repeated,
            "the subject met again is not expanded"
        );
        assert!(two.referrers[1].referrers.is_empty());
        assert!(!two.referrers[0].repeated);

        let shallow = build_tree(&graph, &digest(0), None, 2).await.unwrap();
        let two = &shallow[0].referrers[0];
        assert!(two.referrers.is_empty());
        assert!(two.truncated, "more below the depth limit is flagged");
        assert!(!shallow[0].truncated);

        let filtered = build_tree(&graph, &digest(0), Some("application/vnd.other"), 10)
            .await
            .unwrap();
        assert!(filtered.is_empty());
    }
}
