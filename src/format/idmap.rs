//! Uid/gid mapping (`uidmapping=`/`gidmapping=` ranges) and squashing: what the layers
//! store versus what a mount shows. Pure functions.

/// A `container:host:size` id mapping range (`uidmapping=` / `gidmapping=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

/// Id translation between what the filesystem stores (host) and what the mount shows.
#[derive(Debug, Clone, Default)]
pub struct IdMapper {
    pub uid_map: Vec<IdRange>,
    pub gid_map: Vec<IdRange>,
    pub squash_uid: Option<u32>,
    pub squash_gid: Option<u32>,
}

/// Map `id` through the ranges, from one side (`from`) to the other (`to`); unmapped ids
/// become the overflow id 65534; no ranges is the identity.
fn map_id(map: &[IdRange], id: u32, from: fn(&IdRange) -> u32, to: fn(&IdRange) -> u32) -> u32 {
    if map.is_empty() {
        return id;
    }
    map.iter()
        .find(|r| id >= from(r) && id - from(r) < r.size)
        .map_or(65534, |r| to(r) + (id - from(r)))
}

fn to_container(map: &[IdRange], host: u32) -> u32 {
    map_id(map, host, |r| r.host, |r| r.container)
}

fn to_host(map: &[IdRange], cont: u32) -> u32 {
    map_id(map, cont, |r| r.container, |r| r.host)
}

impl IdMapper {
    /// Stored ids -> presented ids. As fuse-overlayfs (and so containers-storage) reads
    /// `uidmapping=C:H:N`: the layers keep the image's (container) ids C+i, the mount shows
    /// them as host ids H+i, which the container's user namespace maps back to C+i.
    pub fn present(&self, uid: u32, gid: u32) -> (u32, u32) {
        (
            self.squash_uid
                .unwrap_or_else(|| to_host(&self.uid_map, uid)),
            self.squash_gid
                .unwrap_or_else(|| to_host(&self.gid_map, gid)),
        )
    }

    /// Presented (caller, host) ids -> ids to store (container ids).
    pub fn store(&self, uid: u32, gid: u32) -> (u32, u32) {
        (
            to_container(&self.uid_map, uid),
            to_container(&self.gid_map, gid),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        let m = IdMapper {
            uid_map: vec![
                IdRange {
                    container: 0,
                    host: 1000,
                    size: 1,
                },
                IdRange {
                    container: 1,
                    host: 100000,
                    size: 65536,
                },
            ],
            gid_map: vec![],
            squash_uid: None,
            squash_gid: None,
        };
        assert_eq!(m.present(0, 5), (1000, 5));
        assert_eq!(m.present(2, 5), (100001, 5));
        assert_eq!(m.present(65537, 5), (65534, 5));
        assert_eq!(m.store(1000, 7), (0, 7));
        assert_eq!(m.store(100001, 7), (2, 7));
        assert_eq!(m.store(42, 7), (65534, 7));
        let sq = IdMapper {
            squash_uid: Some(0),
            squash_gid: Some(0),
            ..Default::default()
        };
        assert_eq!(sq.present(1234, 99), (0, 0));
    }
}
