//! Building Arrow record batches in the index schema from scanned rows.
//!
//! File columns first ([`FILE_COLUMNS`]), then one column per selected attribute, typed
//! by its kind; multi-valued attributes are lists.

use crate::error::RowError;
use crate::record::{scan_file, stat_file, walk_error};
use crate::walk::Entry;
use arrow_array::builder::{
    Date32Builder, Float64Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use curate_dicom::{ColumnSpec, Decoded, Kind, Selection, Sink, Value};
use std::sync::Arc;

fn kind_type(kind: Kind) -> DataType {
    match kind {
        Kind::Text => DataType::Utf8,
        Kind::Int => DataType::Int64,
        Kind::Float => DataType::Float64,
        Kind::Date => DataType::Date32,
    }
}

fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", t, true)))
}

fn column_type(col: &ColumnSpec) -> DataType {
    let t = kind_type(col.kind);
    if col.multi {
        list_of(t)
    } else {
        t
    }
}

/// The file columns every index batch starts with, in schema order: the one place their
/// names are written (Python reads them as `curate._native.FILE_COLUMNS`).
pub const FILE_COLUMNS: [&str; 9] = [
    "path",
    "file_size",
    "mtime",
    "status",
    "error",
    "transfer_syntax",
    "pixel_data_offset",
    "pixel_data_length",
    "invalid_attributes",
];

/// The index schema for a selection.
pub fn schema(selection: &Selection) -> SchemaRef {
    let [path, file_size, mtime, status, error, transfer_syntax, pixel_data_offset, pixel_data_length, invalid] =
        FILE_COLUMNS;
    let mut fields = vec![
        Field::new(path, DataType::Utf8, false),
        Field::new(file_size, DataType::Int64, true),
        Field::new(mtime, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new(status, DataType::Utf8, false),
        Field::new(error, DataType::Utf8, true),
        Field::new(transfer_syntax, DataType::Utf8, true),
        Field::new(pixel_data_offset, DataType::Int64, true),
        Field::new(pixel_data_length, DataType::Int64, true),
        Field::new(invalid, list_of(DataType::Utf8), true),
    ];
    fields.extend(selection.columns.iter().map(|c| Field::new(&c.name, column_type(c), true)));
    Arc::new(Schema::new(fields))
}

/// Builder for one attribute column.
enum ColumnBuilder {
    Text(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Date(Date32Builder),
    TextList(ListBuilder<StringBuilder>),
    IntList(ListBuilder<Int64Builder>),
    FloatList(ListBuilder<Float64Builder>),
    DateList(ListBuilder<Date32Builder>),
}

impl ColumnBuilder {
    fn new(col: &ColumnSpec, rows: usize) -> Self {
        match (col.kind, col.multi) {
            // No room reserved for text: most attributes are absent from most files, and
            // reserved bytes, reused from earlier batches, stay resident.
            (Kind::Text, false) => Self::Text(StringBuilder::with_capacity(rows, 0)),
            (Kind::Int, false) => Self::Int(Int64Builder::with_capacity(rows)),
            (Kind::Float, false) => Self::Float(Float64Builder::with_capacity(rows)),
            (Kind::Date, false) => Self::Date(Date32Builder::with_capacity(rows)),
            (Kind::Text, true) => Self::TextList(ListBuilder::new(StringBuilder::new())),
            (Kind::Int, true) => Self::IntList(ListBuilder::new(Int64Builder::new())),
            (Kind::Float, true) => Self::FloatList(ListBuilder::new(Float64Builder::new())),
            (Kind::Date, true) => Self::DateList(ListBuilder::new(Date32Builder::new())),
        }
    }

    /// Append one value. The parser decoded it for this column's kind, so a mismatch
    /// cannot happen; it would append null rather than fail the batch.
    fn append(&mut self, value: Decoded<'_>) {
        match (self, value) {
            (Self::Text(b), Decoded::Text(v)) => b.append_value(v),
            (Self::Int(b), Decoded::Value(Value::Int(v))) => b.append_value(v),
            (Self::Float(b), Decoded::Value(Value::Float(v))) => b.append_value(v),
            (Self::Date(b), Decoded::Value(Value::Date(v))) => b.append_value(v),
            (Self::IntList(b), Decoded::Ints(v)) => b.append_value(v.as_slice().iter().map(|&x| Some(x))),
            (Self::FloatList(b), Decoded::Floats(v)) => b.append_value(v.as_slice().iter().map(|&x| Some(x))),
            (Self::DateList(b), Decoded::Dates(v)) => b.append_value(v.as_slice().iter().map(|&x| Some(x))),
            (Self::TextList(b), value @ Decoded::TextParts(..)) => {
                b.values().extend(value.parts().map(Some));
                b.append(true);
            }
            (Self::TextList(b), Decoded::Value(Value::TextList(v))) => b.append_value(v.into_iter().map(Some)),
            (Self::IntList(b), Decoded::Value(Value::IntList(v))) => b.append_value(v.into_iter().map(Some)),
            (Self::FloatList(b), Decoded::Value(Value::FloatList(v))) => b.append_value(v.into_iter().map(Some)),
            (Self::DateList(b), Decoded::Value(Value::DateList(v))) => b.append_value(v.into_iter().map(Some)),
            (builder, _) => builder.append_null(),
        }
    }

    fn append_null(&mut self) {
        self.append_nulls(1)
    }

    fn append_nulls(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        match self {
            Self::Text(b) => b.append_nulls(n),
            Self::Int(b) => b.append_nulls(n),
            Self::Float(b) => b.append_nulls(n),
            Self::Date(b) => b.append_nulls(n),
            Self::TextList(b) => (0..n).for_each(|_| b.append_null()),
            Self::IntList(b) => (0..n).for_each(|_| b.append_null()),
            Self::FloatList(b) => (0..n).for_each(|_| b.append_null()),
            Self::DateList(b) => (0..n).for_each(|_| b.append_null()),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Text(b) => Arc::new(b.finish()),
            Self::Int(b) => Arc::new(b.finish()),
            Self::Float(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::TextList(b) => Arc::new(b.finish()),
            Self::IntList(b) => Arc::new(b.finish()),
            Self::FloatList(b) => Arc::new(b.finish()),
            Self::DateList(b) => Arc::new(b.finish()),
        }
    }
}

/// The attribute columns of the rows being built: the parser's sink. Most attributes are
/// absent from most files, so nulls are not appended row by row: a column catches up
/// with the rows when it next gets a value, and at the end of the batch.
struct AttributeColumns {
    builders: Vec<ColumnBuilder>,
    /// Rows each column holds so far (values and nulls).
    lengths: Vec<usize>,
    /// Rows finished so far: the current row's index.
    row: usize,
}

impl Sink for AttributeColumns {
    fn is_set(&self, col: usize) -> bool {
        self.lengths[col] > self.row
    }

    fn put(&mut self, col: usize, value: Decoded<'_>) {
        let builder = &mut self.builders[col];
        let behind = self.row - self.lengths[col];
        if behind > 0 {
            builder.append_nulls(behind);
        }
        builder.append(value);
        self.lengths[col] = self.row + 1;
    }
}

impl AttributeColumns {
    fn new(selection: &Selection, rows: usize) -> Self {
        AttributeColumns {
            builders: selection.columns.iter().map(|c| ColumnBuilder::new(c, rows)).collect(),
            lengths: vec![0; selection.columns.len()],
            row: 0,
        }
    }

    /// Close the current row: columns the file did not fill are null.
    fn end_row(&mut self) {
        self.row += 1;
    }

    fn finish(&mut self) -> impl Iterator<Item = ArrayRef> + '_ {
        let row = self.row;
        self.builders.iter_mut().zip(&self.lengths).map(move |(builder, &length)| {
            builder.append_nulls(row - length);
            builder.finish()
        })
    }
}

/// Builds one record batch, a file at a time.
pub struct BatchBuilder<'s> {
    schema: SchemaRef,
    selection: &'s Selection,
    path: StringBuilder,
    size: Int64Builder,
    mtime: TimestampMicrosecondBuilder,
    status: StringBuilder,
    error: StringBuilder,
    transfer_syntax: StringBuilder,
    pixel_data_offset: Int64Builder,
    pixel_data_length: Int64Builder,
    invalid: ListBuilder<StringBuilder>,
    attributes: AttributeColumns,
}

impl<'s> BatchBuilder<'s> {
    pub fn new(schema: SchemaRef, selection: &'s Selection, rows: usize) -> Self {
        BatchBuilder {
            schema,
            selection,
            path: StringBuilder::with_capacity(rows, rows * 64),
            size: Int64Builder::with_capacity(rows),
            mtime: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            status: StringBuilder::with_capacity(rows, rows * 2),
            error: StringBuilder::new(),
            transfer_syntax: StringBuilder::with_capacity(rows, rows * 20),
            pixel_data_offset: Int64Builder::with_capacity(rows),
            pixel_data_length: Int64Builder::with_capacity(rows),
            invalid: ListBuilder::new(StringBuilder::new()),
            attributes: AttributeColumns::new(selection, rows),
        }
    }

    /// Scan one walk entry into the next row (`parse = false`: only stat it). An unchecked
    /// entry that turns out to be a folder adds no row: false, and its files are the
    /// caller's to add.
    pub fn add(&mut self, entry: &Entry, parse: bool) -> bool {
        let row = match &entry.error {
            Some(err) => walk_error(err),
            None if parse => scan_file(&entry.path, entry.stat, entry.unchecked, self.selection, &mut self.attributes),
            None => stat_file(&entry.path, entry.stat),
        };
        if row.folder && entry.unchecked {
            return false;
        }
        self.attributes.end_row();
        // Paths are nearly always valid UTF-8: checked in one pass (to_string_lossy walks
        // them in chunks).
        match entry.path.to_str() {
            Some(path) => self.path.append_value(path),
            None => self.path.append_value(entry.path.to_string_lossy()),
        }
        self.size.append_option(row.file_size.map(|s| s as i64));
        self.mtime.append_option(row.mtime_us);
        self.status.append_value(row.status().as_str());
        self.error.append_option(row.error.as_ref().map(RowError::as_str));
        self.transfer_syntax.append_option(row.header.transfer_syntax.as_deref());
        self.pixel_data_offset.append_option(row.header.pixel_data_offset.map(|o| o as i64));
        // -1: undefined length, the encapsulated (compressed) form.
        self.pixel_data_length.append_option(row.header.pixel_data_length.map(|l| l.map_or(-1, i64::from)));
        if row.header.invalid.is_empty() {
            self.invalid.append_null();
        } else {
            let names = row.header.invalid.iter().map(|&i| Some(self.selection.columns[i].name.as_str()));
            self.invalid.append_value(names);
        }
        true
    }

    /// Rows added so far.
    pub fn len(&self) -> usize {
        arrow_array::builder::ArrayBuilder::len(&self.path)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        // In the order of FILE_COLUMNS.
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(self.path.finish()),
            Arc::new(self.size.finish()),
            Arc::new(self.mtime.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.error.finish()),
            Arc::new(self.transfer_syntax.finish()),
            Arc::new(self.pixel_data_offset.finish()),
            Arc::new(self.pixel_data_length.finish()),
            Arc::new(self.invalid.finish()),
        ];
        arrays.extend(self.attributes.finish());
        RecordBatch::try_new(self.schema, arrays)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curate_dicom::{ColumnSpec, Vr};

    #[test]
    fn the_schema_starts_with_the_file_columns() {
        let selection = Selection::new(vec![ColumnSpec::top("PatientID", 0x0010_0020, Vr(*b"LO"), false)]).unwrap();
        let schema = schema(&selection);
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names[..FILE_COLUMNS.len()], FILE_COLUMNS);
        assert_eq!(names[FILE_COLUMNS.len()..], ["PatientID"]);
    }

    #[test]
    fn each_file_column_holds_its_own_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, b"not a DICOM file at all").unwrap();
        let selection = Selection::new(vec![]).unwrap();
        let mut builder = BatchBuilder::new(schema(&selection), &selection, 1);
        let entry = crate::walk::collect(std::slice::from_ref(&path)).remove(0);
        assert!(builder.add(&entry, true));
        let batch = builder.finish().unwrap();
        let text = |name: &str| {
            let column = batch.column_by_name(name).unwrap();
            column.as_any().downcast_ref::<arrow_array::StringArray>().unwrap().value(0).to_string()
        };
        assert_eq!(text("path"), path.to_str().unwrap());
        assert_eq!(text("status"), "not_dicom");
        assert!(text("error").starts_with("not_dicom: "));
        let size = batch.column_by_name("file_size").unwrap();
        let size = size.as_any().downcast_ref::<arrow_array::Int64Array>().unwrap().value(0);
        assert_eq!(size, 23);
    }
}
