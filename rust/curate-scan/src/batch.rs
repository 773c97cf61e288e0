//! Building Arrow record batches in the index schema from scanned rows.
//!
//! File columns first (`path`, `file_size`, `mtime`, `status`, `error`,
//! `transfer_syntax`, `pixel_data_offset`, `invalid_attributes`), then one column per
//! selected attribute, typed by its kind; multi-valued attributes are lists.

use crate::record::FileRecord;
use arrow_array::builder::{
    Date32Builder, Float64Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use curate_dicom::{ColumnSpec, Kind, Selection, Value};
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
    if col.multi { list_of(t) } else { t }
}

/// The index schema for a selection.
pub fn schema(selection: &Selection) -> SchemaRef {
    let mut fields = vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("file_size", DataType::Int64, true),
        Field::new("mtime", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("status", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("transfer_syntax", DataType::Utf8, true),
        Field::new("pixel_data_offset", DataType::Int64, true),
        Field::new("invalid_attributes", list_of(DataType::Utf8), true),
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
    fn new(col: &ColumnSpec) -> Self {
        match (col.kind, col.multi) {
            (Kind::Text, false) => Self::Text(StringBuilder::new()),
            (Kind::Int, false) => Self::Int(Int64Builder::new()),
            (Kind::Float, false) => Self::Float(Float64Builder::new()),
            (Kind::Date, false) => Self::Date(Date32Builder::new()),
            (Kind::Text, true) => Self::TextList(ListBuilder::new(StringBuilder::new())),
            (Kind::Int, true) => Self::IntList(ListBuilder::new(Int64Builder::new())),
            (Kind::Float, true) => Self::FloatList(ListBuilder::new(Float64Builder::new())),
            (Kind::Date, true) => Self::DateList(ListBuilder::new(Date32Builder::new())),
        }
    }

    /// Append one row. The parser decoded the value for this column's kind, so a
    /// mismatch cannot happen; it would append null rather than fail the batch.
    fn append(&mut self, value: Option<&Value>) {
        match (self, value) {
            (Self::Text(b), Some(Value::Text(v))) => b.append_option(v.first()),
            (Self::Int(b), Some(Value::Int(v))) => b.append_option(v.first().copied()),
            (Self::Float(b), Some(Value::Float(v))) => b.append_option(v.first().copied()),
            (Self::Date(b), Some(Value::Date(v))) => b.append_option(v.first().copied()),
            (Self::TextList(b), Some(Value::Text(v))) => b.append_value(v.iter().map(Some)),
            (Self::IntList(b), Some(Value::Int(v))) => b.append_value(v.iter().map(|x| Some(*x))),
            (Self::FloatList(b), Some(Value::Float(v))) => b.append_value(v.iter().map(|x| Some(*x))),
            (Self::DateList(b), Some(Value::Date(v))) => b.append_value(v.iter().map(|x| Some(*x))),
            (Self::Text(b), _) => b.append_null(),
            (Self::Int(b), _) => b.append_null(),
            (Self::Float(b), _) => b.append_null(),
            (Self::Date(b), _) => b.append_null(),
            (Self::TextList(b), _) => b.append_null(),
            (Self::IntList(b), _) => b.append_null(),
            (Self::FloatList(b), _) => b.append_null(),
            (Self::DateList(b), _) => b.append_null(),
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

/// Assemble one record batch from scanned rows.
pub fn to_batch(schema: &SchemaRef, selection: &Selection, rows: &[FileRecord]) -> Result<RecordBatch, ArrowError> {
    let mut path = StringBuilder::new();
    let mut size = Int64Builder::new();
    let mut mtime = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut status = StringBuilder::new();
    let mut error = StringBuilder::new();
    let mut ts = StringBuilder::new();
    let mut offset = Int64Builder::new();
    let mut invalid = ListBuilder::new(StringBuilder::new());
    let mut columns: Vec<ColumnBuilder> = selection.columns.iter().map(ColumnBuilder::new).collect();
    for row in rows {
        path.append_value(&row.path);
        size.append_option(row.file_size.map(|s| s as i64));
        mtime.append_option(row.mtime_us);
        status.append_value(row.status.as_str());
        error.append_option(row.error.as_deref());
        ts.append_option(row.header.transfer_syntax.as_deref());
        offset.append_option(row.header.pixel_data_offset.map(|o| o as i64));
        if row.header.invalid.is_empty() {
            invalid.append_null();
        } else {
            invalid.append_value(row.header.invalid.iter().map(|&i| Some(selection.columns[i].name.as_str())));
        }
        for (builder, value) in columns.iter_mut().zip(&row.header.values) {
            builder.append(value.as_ref());
        }
    }
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(path.finish()),
        Arc::new(size.finish()),
        Arc::new(mtime.finish()),
        Arc::new(status.finish()),
        Arc::new(error.finish()),
        Arc::new(ts.finish()),
        Arc::new(offset.finish()),
        Arc::new(invalid.finish()),
    ];
    arrays.extend(columns.iter_mut().map(ColumnBuilder::finish));
    RecordBatch::try_new(schema.clone(), arrays)
}
