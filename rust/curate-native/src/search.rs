//! Many literals found in one pass over bytes (Aho-Corasick): de-identification looks
//! for a patient's values in every encoding they may be written in, hundreds of
//! literals, in headers and pixel bytes of megabytes, which one `find` a literal would
//! read once each.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A set of byte literals, built once and searched for in many buffers.
#[pyclass(name = "Literals", module = "curate._native", frozen)]
pub(crate) struct Literals {
    automaton: AhoCorasick,
}

#[pymethods]
impl Literals {
    /// The literals `needles` (none empty); with `ascii_case_insensitive`, an ASCII letter
    /// matches in either case.
    #[new]
    #[pyo3(signature = (needles, ascii_case_insensitive=false))]
    fn new(needles: Vec<Vec<u8>>, ascii_case_insensitive: bool) -> PyResult<Self> {
        if needles.iter().any(|n| n.is_empty()) {
            return Err(PyValueError::new_err("an empty literal matches everywhere"));
        }
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard) // every match, overlapping ones too
            .ascii_case_insensitive(ascii_case_insensitive)
            .build(&needles)
            .map_err(|e| PyValueError::new_err(format!("the literals cannot be searched for: {e}")))?;
        Ok(Literals { automaton })
    }

    /// Every place one of the literals occurs in `data`, overlapping ones included, as
    /// (start, the literal's index), in the order they end; at most `limit` (the GIL
    /// let go).
    #[pyo3(signature = (data, limit=usize::MAX))]
    fn find_all(&self, py: Python<'_>, data: &[u8], limit: usize) -> Vec<(usize, usize)> {
        py.detach(|| {
            self.automaton
                .find_overlapping_iter(data)
                .take(limit)
                .map(|m| (m.start(), m.pattern().as_usize()))
                .collect()
        })
    }

    /// Whether one of the literals occurs in `data` (the GIL let go).
    fn occurs_in(&self, py: Python<'_>, data: &[u8]) -> bool {
        py.detach(|| self.automaton.is_match(data))
    }

    /// How many literals the set holds.
    fn __len__(&self) -> usize {
        self.automaton.patterns_len()
    }
}
