//! `USER[:GROUP]` against the image's `/etc/passwd` and `/etc/group`, as docker resolves
//! it: names or numbers; a number with no passwd entry is that uid with gid 0; the user's
//! supplementary groups come from the group file. Pure functions over the files' bytes.

/// Who the container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct Passwd<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct Group<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(text: &str) -> Vec<Passwd<'_>> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || l.starts_with('#') {
                return None;
            }
            Some(Passwd {
                name: f[0],
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).copied().unwrap_or(""),
            })
        })
        .collect()
}

fn group_entries(text: &str) -> Vec<Group<'_>> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 || l.starts_with('#') {
                return None;
            }
            Some(Group {
                name: f[0],
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolve `spec` (`""` = root) against the passwd and group files (absent: empty).
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<ExecUser, String> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let users = passwd_entries(passwd);
    let groups = group_entries(group);
    let entry = match u.parse::<u32>() {
        Ok(n) => users.iter().find(|p| p.uid == n),
        Err(_) => Some(users.iter().find(|p| p.name == u).ok_or_else(|| {
            format!("unable to find user {u}: no matching entries in passwd file")
        })?),
    };
    let uid = entry.map_or_else(|| u.parse().unwrap_or(0), |p| p.uid);
    let mut gid = entry.map_or(0, |p| p.gid);
    let home = entry
        .map(|p| p.home)
        .filter(|h| !h.is_empty())
        .unwrap_or("/")
        .to_string();
    let mut additional_gids = Vec::new();
    match g {
        Some(g) if !g.is_empty() => {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => {
                    groups
                        .iter()
                        .find(|x| x.name == g)
                        .ok_or_else(|| {
                            format!("unable to find group {g}: no matching entries in group file")
                        })?
                        .gid
                }
            };
        }
        _ => {
            if let Some(p) = entry {
                additional_gids = groups
                    .iter()
                    .filter(|x| x.members.contains(&p.name) && x.gid != gid)
                    .map(|x| x.gid)
                    .collect();
            }
        }
    }
    Ok(ExecUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GR: &str = "root:x:0:\nwheel:x:10:app,other\napp:x:1000:\n";

    #[test]
    fn names_numbers_and_groups() {
        let r = resolve("", PW, GR).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
        let a = resolve("app", PW, GR).unwrap();
        assert_eq!(
            (a.uid, a.gid, a.additional_gids.clone()),
            (1000, 1000, vec![10])
        );
        assert_eq!(a.home, "/home/app");
        let n = resolve("1234", PW, GR).unwrap();
        assert_eq!((n.uid, n.gid, n.home.as_str()), (1234, 0, "/"));
        let g = resolve("app:root", PW, GR).unwrap();
        assert_eq!((g.uid, g.gid), (1000, 0));
        assert!(g.additional_gids.is_empty());
        assert_eq!(resolve("1000:55", PW, GR).unwrap().gid, 55);
        assert!(resolve("nobody", PW, GR).unwrap_err().contains("nobody"));
        assert!(
            resolve("app:nogroup", PW, GR)
                .unwrap_err()
                .contains("nogroup")
        );
        assert_eq!(resolve("0", "", "").unwrap().uid, 0);
    }
}
