//! Where decoded values go. The parser hands each selected attribute's value to a sink:
//! [`Collect`] keeps them as owned values (tests, one-off reads); the scanner's sink
//! appends them straight into Arrow builders, so text is copied once.

use crate::value::{Decoded, Value};

pub trait Sink {
    /// Whether column `col` already holds a value for the current file (the first
    /// occurrence of a duplicated attribute wins).
    fn is_set(&self, col: usize) -> bool;
    /// Take the value of column `col` for the current file.
    fn put(&mut self, col: usize, value: Decoded<'_>);
}

/// Keeps one owned value per column.
#[derive(Debug, Default)]
pub struct Collect {
    pub values: Vec<Option<Value>>,
}

impl Collect {
    pub fn new(columns: usize) -> Self {
        Collect { values: vec![None; columns] }
    }
}

impl Sink for Collect {
    fn is_set(&self, col: usize) -> bool {
        self.values[col].is_some()
    }

    fn put(&mut self, col: usize, value: Decoded<'_>) {
        self.values[col] = Some(value.into_value());
    }
}
