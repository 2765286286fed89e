//! The host's `/aliases` entries that name a passed device. Drivers read them: i.MX UARTs
//! refuse to probe without a `serialN` alias (it is their line number), MMC hosts take their
//! block device index from `mmcN`, Ethernet MACs their boot-loader address slot from
//! `ethernetN`, I2C and SPI buses their bus number.

use std::path::Path;

/// One alias: its name (`serial0`) and the path it names (`/soc@0/.../serial@30860000`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub name: String,
    pub path: String,
}

impl Alias {
    /// The name without its number, and the number (`serial`, 0); `None` for a name that does
    /// not end in digits.
    pub fn stem_and_index(&self) -> Option<(&str, u32)> {
        split(&self.name)
    }
}

/// `serial12` → (`serial`, 12); `None` without trailing digits or without a stem.
pub fn split(name: &str) -> Option<(&str, u32)> {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if stem.is_empty() || stem.len() == name.len() {
        return None;
    }
    Some((stem, name[stem.len()..].parse().ok()?))
}

/// The names of the aliases that name `path`.
pub fn naming(aliases: &[Alias], path: &str) -> Vec<String> {
    aliases
        .iter()
        .filter(|a| a.path == path)
        .map(|a| a.name.clone())
        .collect()
}

/// The live tree's aliases: the files of `base/aliases` (each a NUL-terminated path). Values
/// that are not absolute paths are left out; a tree without aliases has none.
pub fn read_sysfs(base: &Path) -> Vec<Alias> {
    let Ok(rd) = std::fs::read_dir(base.join("aliases")) else {
        return Vec::new();
    };
    let mut v: Vec<Alias> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let raw = std::fs::read(e.path()).ok()?;
            let path = String::from_utf8(raw).ok()?;
            let path = path.trim_end_matches('\0');
            (name != "name" && path.starts_with('/')).then(|| Alias {
                name,
                path: path.to_string(),
            })
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_stem_and_index() {
        assert_eq!(split("serial0"), Some(("serial", 0)));
        assert_eq!(split("mmc12"), Some(("mmc", 12)));
        assert_eq!(split("ethernet"), None);
        assert_eq!(split("42"), None);
        assert_eq!(split("i2c1"), Some(("i2c", 1)));
        assert_eq!(split("serial99999999999"), None, "overflows u32");
    }

    #[test]
    fn the_live_tree_aliases_are_read_and_matched_by_path() {
        let d = std::env::temp_dir().join(format!("platvmm-aliases-{}", std::process::id()));
        std::fs::create_dir_all(d.join("aliases")).unwrap();
        std::fs::write(d.join("aliases/serial0"), b"/soc@0/serial@30860000\0").unwrap();
        std::fs::write(d.join("aliases/mmc1"), b"/soc@0/mmc@30b50000\0").unwrap();
        std::fs::write(d.join("aliases/name"), b"aliases\0").unwrap();
        std::fs::write(d.join("aliases/bogus"), b"serial@1\0").unwrap();
        let a = read_sysfs(&d);
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!(naming(&a, "/soc@0/mmc@30b50000"), ["mmc1"]);
        assert!(naming(&a, "/soc@0/mmc@30b6000").is_empty());
        assert!(read_sysfs(&d.join("none")).is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
