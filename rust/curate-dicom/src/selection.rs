//! Which attributes a scan returns, as a tree the parser walks alongside the file.
//!
//! A column names a path: a top-level tag, or a chain through sequence items such as
//! `ViewCodeSequence[0].CodeMeaning`. The parser asks the tree at each element whether to
//! read it, descend into it, or skip it unread.

use crate::vr::Vr;

/// One step of a path: a tag, and for a sequence the item index to descend into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathStep {
    pub tag: u32,
    pub item: Option<u32>,
}

/// The value type a column holds. Follows the design's index schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Float,
    Date,
}

impl Kind {
    /// text → string, IS/US/UL/SS/SL/SV/UV → int64, DS/FL/FD → float64, DA → date32.
    pub fn for_vr(vr: Vr) -> Kind {
        match &vr.0 {
            b"IS" | b"US" | b"UL" | b"SS" | b"SL" | b"SV" | b"UV" => Kind::Int,
            b"DS" | b"FL" | b"FD" | b"OF" | b"OD" => Kind::Float,
            b"DA" => Kind::Date,
            _ => Kind::Text,
        }
    }
}

/// One output column: a name, a path to the attribute, the dictionary VR (used where the
/// file says nothing: implicit VR, UN) and whether the attribute may hold several values.
#[derive(Clone, Debug)]
pub struct ColumnSpec {
    pub name: String,
    pub path: Vec<PathStep>,
    pub vr: Vr,
    pub kind: Kind,
    pub multi: bool,
}

impl ColumnSpec {
    pub fn new(name: impl Into<String>, path: Vec<PathStep>, vr: Vr, multi: bool) -> Self {
        ColumnSpec { name: name.into(), path, vr, kind: Kind::for_vr(vr), multi }
    }

    /// A top-level attribute.
    pub fn top(name: impl Into<String>, tag: u32, vr: Vr, multi: bool) -> Self {
        Self::new(name, vec![PathStep { tag, item: None }], vr, multi)
    }
}

/// What to do at one tag of one data set.
#[derive(Debug, Default)]
pub struct Target {
    /// Columns that take this element's value (more than one when a user names the
    /// same attribute twice, e.g. under an alias).
    pub columns: Vec<usize>,
    /// Items to descend into, by item index.
    pub items: Vec<(u32, Node)>,
}

impl Target {
    pub fn item(&self, index: u32) -> Option<&Node> {
        self.items.iter().find(|(i, _)| *i == index).map(|(_, n)| n)
    }
}

/// The tags wanted in one data set, sorted for binary search.
#[derive(Debug, Default)]
pub struct Node {
    tags: Vec<u32>,
    targets: Vec<Target>,
}

impl Node {
    pub fn get(&self, tag: u32) -> Option<&Target> {
        self.tags.binary_search(&tag).ok().map(|i| &self.targets[i])
    }

    /// Look up `tag`, starting where the previous lookup of the same data set ended.
    /// Elements come in ascending tag order, so this walks forward a step at a time;
    /// an out-of-order element (a broken writer) falls back to a binary search.
    #[inline]
    pub fn find(&self, tag: u32, cursor: &mut usize) -> Option<&Target> {
        let tags = &self.tags;
        let mut i = *cursor;
        if i > 0 && tags[i - 1] >= tag {
            i = tags.partition_point(|&t| t < tag);
        } else {
            while i < tags.len() && tags[i] < tag {
                i += 1;
            }
        }
        *cursor = i;
        (i < tags.len() && tags[i] == tag).then(|| &self.targets[i])
    }

    fn entry(&mut self, tag: u32) -> &mut Target {
        let i = match self.tags.binary_search(&tag) {
            Ok(i) => i,
            Err(i) => {
                self.tags.insert(i, tag);
                self.targets.insert(i, Target::default());
                i
            }
        };
        &mut self.targets[i]
    }
}

/// The columns of a scan and the tree that finds them.
#[derive(Debug)]
pub struct Selection {
    pub columns: Vec<ColumnSpec>,
    pub root: Node,
}

/// A column whose path cannot be followed.
#[derive(Debug, PartialEq, Eq)]
pub struct SelectionError(pub String);

impl std::fmt::Display for SelectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SelectionError {}

impl Selection {
    pub fn new(columns: Vec<ColumnSpec>) -> Result<Selection, SelectionError> {
        let mut root = Node::default();
        for (index, col) in columns.iter().enumerate() {
            let Some((last, parents)) = col.path.split_last() else {
                return Err(SelectionError(format!("column {:?} has an empty path", col.name)));
            };
            if columns[..index].iter().any(|c| c.name == col.name) {
                return Err(SelectionError(format!("column {:?} is selected twice", col.name)));
            }
            let mut node = &mut root;
            for step in parents {
                let Some(item) = step.item else {
                    return Err(SelectionError(format!(
                        "column {:?}: a sequence step needs an item index, e.g. Seq[0]",
                        col.name
                    )));
                };
                let target = node.entry(step.tag);
                let pos = match target.items.iter().position(|(i, _)| *i == item) {
                    Some(p) => p,
                    None => {
                        target.items.push((item, Node::default()));
                        target.items.len() - 1
                    }
                };
                node = &mut target.items[pos].1;
            }
            if last.item.is_some() {
                return Err(SelectionError(format!(
                    "column {:?} ends in a sequence item; name an attribute inside it",
                    col.name
                )));
            }
            node.entry(last.tag).columns.push(index);
        }
        Ok(Selection { columns, root })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_paths_share_parents() {
        let seq = 0x0054_0220;
        let cols = vec![
            ColumnSpec::top("Modality", 0x0008_0060, Vr(*b"CS"), false),
            ColumnSpec::new(
                "View",
                vec![PathStep { tag: seq, item: Some(0) }, PathStep { tag: 0x0008_0104, item: None }],
                Vr(*b"LO"),
                false,
            ),
            ColumnSpec::new(
                "ViewCode",
                vec![PathStep { tag: seq, item: Some(0) }, PathStep { tag: 0x0008_0100, item: None }],
                Vr(*b"SH"),
                false,
            ),
        ];
        let sel = Selection::new(cols).unwrap();
        assert_eq!(sel.root.get(0x0008_0060).unwrap().columns, [0]);
        let item = sel.root.get(seq).unwrap().item(0).unwrap();
        assert_eq!(item.get(0x0008_0104).unwrap().columns, [1]);
        assert_eq!(item.get(0x0008_0100).unwrap().columns, [2]);
        assert!(sel.root.get(seq).unwrap().item(1).is_none());
    }

    #[test]
    fn find_walks_forward_and_survives_disorder() {
        let cols = [0x0008_0060u32, 0x0010_0010, 0x0020_000d]
            .iter()
            .enumerate()
            .map(|(i, &t)| ColumnSpec::top(format!("c{i}"), t, Vr(*b"LO"), false))
            .collect();
        let sel = Selection::new(cols).unwrap();
        let mut cursor = 0;
        assert!(sel.root.find(0x0008_0005, &mut cursor).is_none());
        assert_eq!(sel.root.find(0x0008_0060, &mut cursor).unwrap().columns, [0]);
        assert_eq!(sel.root.find(0x0020_000d, &mut cursor).unwrap().columns, [2]);
        // Out of order: found all the same.
        assert_eq!(sel.root.find(0x0010_0010, &mut cursor).unwrap().columns, [1]);
        assert!(sel.root.find(0x7fe0_0010, &mut cursor).is_none());
        assert!(sel.root.find(0x0008_0061, &mut cursor).is_none());
    }

    #[test]
    fn one_attribute_can_fill_several_columns() {
        let cols = vec![
            ColumnSpec::top("PatientID", 0x0010_0020, Vr(*b"LO"), false),
            ColumnSpec::top("PID", 0x0010_0020, Vr(*b"LO"), false),
        ];
        let sel = Selection::new(cols).unwrap();
        assert_eq!(sel.root.get(0x0010_0020).unwrap().columns, [0, 1]);
    }

    #[test]
    fn duplicate_names_are_refused() {
        let c = ColumnSpec::top("A", 1, Vr(*b"CS"), false);
        assert!(Selection::new(vec![c.clone(), c]).is_err());
    }
}
