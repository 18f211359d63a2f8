//! TensorBoard event files: scalars written in the format `tensorboard --logdir` reads, and a
//! small reader for them.
//!
//! A file is a sequence of TFRecord records, each an `Event` protocol buffer:
//! the first says `file_version: "brain.Event:2"`, each later one holds one scalar
//! (`summary { value { tag, simple_value } }`) with its step and wall time. A record is
//! `length: u64 LE · masked CRC32C(length bytes) · data · masked CRC32C(data)`, where
//! masking is `((crc >> 15) | (crc << 17)) + 0xa282ead8`. The protocol buffers are encoded
//! here by hand (four message fields and two nested messages; no `.proto` compiler) and
//! CRC32C comes from a 256-entry table; both are pinned by tests against bytes written by
//! TensorBoard's own Python writer.
//!
//! [`LogDir`] adds the layout of Keras's `TensorBoard` callback: `root/train` and
//! `root/validation`, one run each, with `epoch_`-prefixed tags and the epoch index (from 0)
//! as the step.
//!
//! Event files are written in place, not atomically: TensorBoard reads files that are still
//! growing and ignores a record cut short at the end, and so does [`read_scalars`].

use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The `file_version` TensorFlow writes in the first event of every event file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// One event file in one log directory (a TensorBoard "run"), written as scalars arrive.
///
/// Records are buffered in memory until [`EventWriter::flush`] (or drop); flush after each
/// epoch's scalars so that a running TensorBoard sees them.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    file: BufWriter<File>,
}

impl EventWriter {
    /// Create `dir` if needed, then a new event file in it named as TensorFlow names them
    /// (`events.out.tfevents.<unix seconds>.<hostname>.<pid>.<counter>`), holding the
    /// `file_version` event.
    pub fn new(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let wall_time = now();
        let (path, file) = create_event_file(dir, wall_time as u64)?;
        let mut writer = EventWriter { path, file: BufWriter::new(file) };
        writer.write_record(&encode_event(wall_time, 0, EventBody::FileVersion(FILE_VERSION)))?;
        writer.flush()?;
        Ok(writer)
    }

    /// The event file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append the scalar `value` of series `tag` at `step`, stamped with the current time.
    pub fn add_scalar(&mut self, tag: &str, step: i64, value: f32) -> Result<()> {
        self.add_scalar_at(tag, step, value, now())
    }

    /// Append a scalar with an explicit wall time (seconds since the Unix epoch).
    pub fn add_scalar_at(&mut self, tag: &str, step: i64, value: f32, wall_time: f64) -> Result<()> {
        if tag.is_empty() {
            return Err(Error::Config(format!(
                "TensorBoard scalar tag for {}: must not be empty",
                self.path.display()
            )));
        }
        self.write_record(&encode_event(wall_time, step, EventBody::Scalar { tag, value }))
    }

    /// Hand the buffered records to the operating system, where TensorBoard can read them.
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }

    fn write_record(&mut self, data: &[u8]) -> Result<()> {
        self.file.write_all(&frame_record(data)).map_err(|e| Error::io(&self.path, e))
    }
}

/// Keras's TensorBoard layout under one root: a `train` and a `validation` run, each
/// folder and event file created when first written to.
#[derive(Debug)]
pub struct LogDir {
    root: PathBuf,
    train: Option<EventWriter>,
    validation: Option<EventWriter>,
}

impl LogDir {
    /// A log directory at `root` (`tensorboard --logdir root` shows its two runs); nothing
    /// is created until the first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LogDir { root: root.into(), train: None, validation: None }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The writer for `root/train`, created on first use.
    pub fn train(&mut self) -> Result<&mut EventWriter> {
        writer_in(&mut self.train, self.root.join("train"))
    }

    /// The writer for `root/validation`, created on first use.
    pub fn validation(&mut self) -> Result<&mut EventWriter> {
        writer_in(&mut self.validation, self.root.join("validation"))
    }

    /// Write one epoch's logs as Keras's `TensorBoard` callback does, then flush: a name
    /// `val_x` goes to `validation` as `epoch_x`, any other name `x` to `train` as
    /// `epoch_x` (so `loss`, `accuracy`, `learning_rate` become `epoch_loss`, …). The step
    /// is `epoch_index`, the epoch counted from 0 as in Keras. Values are stored as `f32`.
    pub fn log_epoch(&mut self, epoch_index: usize, logs: &[(&str, f64)]) -> Result<()> {
        let step = i64::try_from(epoch_index)
            .map_err(|_| Error::Config(format!("epoch_index {epoch_index}: must be below 2^63")))?;
        let wall_time = now();
        for &(name, value) in logs {
            let (writer, name) = match name.strip_prefix("val_") {
                Some(name) => (self.validation()?, name),
                None => (self.train()?, name),
            };
            writer.add_scalar_at(&format!("epoch_{name}"), step, value as f32, wall_time)?;
        }
        self.flush()
    }

    /// Flush both writers (those created so far).
    pub fn flush(&mut self) -> Result<()> {
        for writer in [&mut self.train, &mut self.validation].into_iter().flatten() {
            writer.flush()?;
        }
        Ok(())
    }
}

fn writer_in(slot: &mut Option<EventWriter>, dir: PathBuf) -> Result<&mut EventWriter> {
    let writer = match slot.take() {
        Some(writer) => writer,
        None => EventWriter::new(dir)?,
    };
    Ok(slot.insert(writer))
}

/// A table of the scalars under a Keras-layout log folder (`train/`, `validation/`): one row per
/// run and tag with the number of steps and the first and last values, read back with
/// [`read_scalars`] (a check that the files hold what the run logged).
pub fn table(root: impl AsRef<Path>) -> Result<crate::table::Table> {
    let root = root.as_ref();
    let mut table = crate::table::Table::new(["run", "tag", "steps", "first", "last"])
        .title(format!("TensorBoard scalars in {}", root.display()));
    for run in ["train", "validation"] {
        let dir = root.join(run);
        if !dir.is_dir() {
            continue;
        }
        let mut tags: Vec<(String, Vec<(i64, f32)>)> = Vec::new();
        for (tag, step, value) in read_scalars(&dir)? {
            match tags.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, points)) => points.push((step, value)),
                None => tags.push((tag, vec![(step, value)])),
            }
        }
        for (tag, points) in tags {
            let (first, last) = (points[0].1, points[points.len() - 1].1);
            table.row([run.to_string(), tag, points.len().to_string(), format!("{first:.4}"), format!("{last:.4}")]);
        }
    }
    Ok(table)
}

/// Every scalar in an event file, or in every event file of a folder (in name order, as
/// TensorBoard reads them): `(tag, step, value)` in file order. Both CRCs of every record
/// are checked; a mismatch or a malformed event is an error naming the file. A record cut
/// short at the end of a file (a writer still writing, or killed mid-write) ends that file,
/// as in TensorBoard. Only `simple_value` scalars are read; other summaries are skipped.
pub fn read_scalars(path: impl AsRef<Path>) -> Result<Vec<(String, i64, f32)>> {
    let path = path.as_ref();
    if !path.is_dir() {
        return read_file(path);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let entry = entry.map_err(|e| Error::io(path, e))?;
        if entry.file_name().to_string_lossy().contains("tfevents") && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    let mut scalars = Vec::new();
    for file in files {
        scalars.extend(read_file(&file)?);
    }
    Ok(scalars)
}

fn read_file(path: &Path) -> Result<Vec<(String, i64, f32)>> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    scalars_in(&bytes).map_err(|reason| Error::bad_file(path, reason))
}

/// The scalars of an event file's bytes, or what is wrong with them.
fn scalars_in(bytes: &[u8]) -> std::result::Result<Vec<(String, i64, f32)>, String> {
    let mut scalars = Vec::new();
    let mut pos = 0;
    let mut index = 0;
    // A record needs 8 length bytes, 4 CRC bytes, the data and 4 more CRC bytes; fewer
    // bytes left than that is a record still being written.
    while bytes.len() - pos >= 12 {
        let at = |what: String| format!("record {index} at byte {pos}: {what}");
        let length_bytes = &bytes[pos..pos + 8];
        let stored = u32_le(&bytes[pos + 8..pos + 12]);
        let computed = masked_crc32c(length_bytes);
        if stored != computed {
            return Err(at(format!(
                "length CRC32C mismatch (stored {stored:#010x}, computed {computed:#010x}); \
                 the file is corrupt or not a TensorBoard event file"
            )));
        }
        let length = u64::from_le_bytes(length_bytes.try_into().unwrap_or_default());
        let left = (bytes.len() - pos - 12) as u64;
        if left < 4 || length > left - 4 {
            break;
        }
        let data = &bytes[pos + 12..pos + 12 + length as usize];
        let end = pos + 12 + length as usize;
        let stored = u32_le(&bytes[end..end + 4]);
        let computed = masked_crc32c(data);
        if stored != computed {
            return Err(at(format!(
                "data CRC32C mismatch (stored {stored:#010x}, computed {computed:#010x}); the file is corrupt"
            )));
        }
        decode_event(data, &mut scalars).map_err(|what| at(format!("malformed Event: {what}")))?;
        pos = end + 4;
        index += 1;
    }
    Ok(scalars)
}

fn u32_le(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().unwrap_or_default())
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Distinguishes the files this process creates within one second.
static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

fn create_event_file(dir: &Path, seconds: u64) -> Result<(PathBuf, File)> {
    let host = hostname();
    let pid = std::process::id();
    loop {
        let counter = FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("events.out.tfevents.{seconds:010}.{host}.{pid}.{counter}"));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            // Left by another process that had our pid; the next counter is free.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(path, e)),
        }
    }
}

/// The machine's name as it goes in a file name (characters other than letters, digits,
/// `-`, `_` and `.` replaced by `_`), or `localhost` when it cannot be found.
fn hostname() -> String {
    let name = system_hostname()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .collect()
}

#[cfg(unix)]
fn system_hostname() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `buffer.len()` bytes into the buffer it is given.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return None;
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    Some(String::from_utf8_lossy(&buffer[..end]).into_owned())
}

#[cfg(not(unix))]
fn system_hostname() -> Option<String> {
    None
}

// ---- TFRecord framing and CRC32C ----

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) lookup table, one entry per byte.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = byte as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
};

fn crc32c(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &b| CRC32C_TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8))
}

fn masked_crc32c(bytes: &[u8]) -> u32 {
    // ((crc >> 15) | (crc << 17)) + 0xa282ead8, as TensorFlow masks it.
    crc32c(bytes).rotate_right(15).wrapping_add(0xa282_ead8)
}

fn frame_record(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut record = Vec::with_capacity(data.len() + 16);
    record.extend_from_slice(&length);
    record.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
    record.extend_from_slice(data);
    record.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    record
}

// ---- Protocol buffer encoding of Event, Summary and Summary.Value ----
//
// message Event   { double wall_time = 1; int64 step = 2; string file_version = 3;
//                   Summary summary = 5; … }
// message Summary { repeated Value value = 1; }
// message Value   { string tag = 1; oneof value { float simple_value = 2; … } }
//
// A field is a key varint `(number << 3) | wire type`, then its value: wire type 0 a
// varint, 1 eight little-endian bytes, 2 a length varint and that many bytes, 5 four
// little-endian bytes. Fields go in number order, and proto3 leaves out a zero step or
// wall time (a oneof member such as simple_value is written even when zero).

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LENGTH_DELIMITED: u64 = 2;
const FIXED32: u64 = 5;

/// What an event carries besides its wall time and step.
enum EventBody<'a> {
    /// The first event of a file.
    FileVersion(&'a str),
    /// One scalar summary value.
    Scalar { tag: &'a str, value: f32 },
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    put_varint(out, field << 3 | wire_type);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(out, field, LENGTH_DELIMITED);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn encode_event(wall_time: f64, step: i64, body: EventBody) -> Vec<u8> {
    let mut event = Vec::new();
    if wall_time.to_bits() != 0 {
        put_key(&mut event, 1, FIXED64);
        event.extend_from_slice(&wall_time.to_le_bytes());
    }
    if step != 0 {
        put_key(&mut event, 2, VARINT);
        put_varint(&mut event, step as u64);
    }
    match body {
        EventBody::FileVersion(version) => put_bytes(&mut event, 3, version.as_bytes()),
        EventBody::Scalar { tag, value } => {
            let mut summary_value = Vec::new();
            put_bytes(&mut summary_value, 1, tag.as_bytes());
            put_key(&mut summary_value, 2, FIXED32);
            summary_value.extend_from_slice(&value.to_le_bytes());
            let mut summary = Vec::new();
            put_bytes(&mut summary, 1, &summary_value);
            put_bytes(&mut event, 5, &summary);
        }
    }
    event
}

// ---- Decoding: only what read_scalars needs; unknown fields are skipped ----

/// One field's value as it appears on the wire.
enum Wire<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// The fields of one message, in order.
struct Fields<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Fields { bytes, pos: 0 }
    }

    fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.pos).ok_or("varint runs past the end")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: u64) -> std::result::Result<&'a [u8], String> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(format!("field of {n} bytes with only {left} left"));
        }
        let taken = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(taken)
    }

    fn next_field(&mut self) -> std::result::Result<Option<(u64, Wire<'a>)>, String> {
        if self.pos == self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err("field number 0".into());
        }
        let wire = match key & 7 {
            VARINT => Wire::Varint(self.varint()?),
            FIXED64 => {
                self.take(8)?;
                Wire::Fixed64
            }
            LENGTH_DELIMITED => {
                let n = self.varint()?;
                Wire::Bytes(self.take(n)?)
            }
            FIXED32 => Wire::Fixed32(u32_le(self.take(4)?)),
            other => return Err(format!("field {field} has unsupported wire type {other}")),
        };
        Ok(Some((field, wire)))
    }
}

fn wrong_type(message: &str, field: u64) -> String {
    format!("{message} field {field} has the wrong wire type")
}

/// Append the `simple_value` scalars of one serialised `Event` to `scalars`.
fn decode_event(
    event: &[u8],
    scalars: &mut Vec<(String, i64, f32)>,
) -> std::result::Result<(), String> {
    let mut step = 0i64;
    let mut summaries = Vec::new();
    let mut fields = Fields::new(event);
    while let Some((field, wire)) = fields.next_field()? {
        match (field, wire) {
            (2, Wire::Varint(v)) => step = v as i64,
            (5, Wire::Bytes(summary)) => summaries.push(summary),
            (2 | 5, _) => return Err(wrong_type("Event", field)),
            _ => {}
        }
    }
    // A step that follows its summary in the bytes still applies to it, hence two passes.
    for summary in summaries {
        let mut fields = Fields::new(summary);
        while let Some((field, wire)) = fields.next_field()? {
            match (field, wire) {
                (1, Wire::Bytes(value)) => {
                    if let Some((tag, value)) = decode_value(value)? {
                        scalars.push((tag, step, value));
                    }
                }
                (1, _) => return Err(wrong_type("Summary", field)),
                _ => {}
            }
        }
    }
    Ok(())
}

/// A `Summary.Value`'s tag and `simple_value`, if it has one.
fn decode_value(value: &[u8]) -> std::result::Result<Option<(String, f32)>, String> {
    let mut tag = String::new();
    let mut simple_value = None;
    let mut fields = Fields::new(value);
    while let Some((field, wire)) = fields.next_field()? {
        match (field, wire) {
            (1, Wire::Bytes(bytes)) => {
                tag = String::from_utf8(bytes.to_vec()).map_err(|_| "tag is not UTF-8".to_string())?;
            }
            (2, Wire::Fixed32(bits)) => simple_value = Some(f32::from_bits(bits)),
            (1 | 2, _) => return Err(wrong_type("Summary.Value", field)),
            _ => {}
        }
    }
    Ok(simple_value.map(|value| (tag, value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace().map(|b| u8::from_str_radix(b, 16).expect("test hex")).collect()
    }

    // The reference bytes below were worked out by hand and confirmed once with TensorBoard's
    // own Python writer (tensorboard 2.21.0, protobuf 7.36.2):
    //   from tensorboard.compat.proto import event_pb2, summary_pb2
    //   from tensorboard.summary.writer.record_writer import RecordWriter
    //   e = event_pb2.Event(wall_time=1.5, step=300, summary=summary_pb2.Summary(
    //       value=[summary_pb2.Summary.Value(tag="loss", simple_value=0.25)]))
    //   e.SerializeToString().hex(" ")        # the event
    //   w = RecordWriter(buf := io.BytesIO()); w.write(e.SerializeToString()); w.flush()
    //   buf.getvalue().hex(" ")               # the framed record

    #[test]
    fn scalar_event_encodes_as_derived_by_hand() {
        // Event{wall_time: 1.5, step: 300, summary{value{tag: "loss", simple_value: 0.25}}}
        //   09                       key: field 1 (wall_time), wire type 1 (64-bit) = 1<<3|1
        //   00 00 00 00 00 00 f8 3f  1.5 = 0x3FF8_0000_0000_0000 (sign 0, exponent 1023, mantissa .1b), LE
        //   10                       key: field 2 (step), wire type 0 (varint) = 2<<3|0
        //   ac 02                    300 = 0b10_0101100: low 7 bits 0x2c | 0x80 continue, then 300>>7 = 2
        //   2a 0d                    key: field 5 (summary), wire type 2 = 5<<3|2 = 42; length 13
        //     0a 0b                  Summary key: field 1 (value), wire type 2; length 11
        //       0a 04 6c 6f 73 73    Value key: field 1 (tag), wire type 2; length 4; "loss"
        //       15 00 00 80 3e       Value key: field 2 (simple_value), wire type 5 (32-bit) = 2<<3|5 = 21;
        //                            0.25 = 2^-2 = 0x3E80_0000 (exponent 125), LE
        // 9 + 3 + 2 + 13 = 27 bytes.
        let bytes = encode_event(1.5, 300, EventBody::Scalar { tag: "loss", value: 0.25 });
        assert_eq!(bytes, hex("09 00 00 00 00 00 00 f8 3f 10 ac 02 2a 0d 0a 0b 0a 04 6c 6f 73 73 15 00 00 80 3e"));
    }

    #[test]
    fn file_version_event_encodes_as_derived_by_hand() {
        // wall_time as above, no step (proto3 leaves out zero), then field 3 (file_version),
        // wire type 2: key 3<<3|2 = 0x1a, length 13, "brain.Event:2".
        let bytes = encode_event(1.5, 0, EventBody::FileVersion(FILE_VERSION));
        let mut expected = hex("09 00 00 00 00 00 00 f8 3f 1a 0d");
        expected.extend_from_slice(b"brain.Event:2");
        assert_eq!(bytes, expected);
    }

    #[test]
    fn negative_step_is_a_ten_byte_varint_and_zero_value_is_kept() {
        // int64 -1 is 2^64 - 1 as a varint: nine bytes of seven 1-bits with the continuation
        // bit (ff), then the last bit (01). simple_value 0.0 is a oneof member, so written.
        let bytes = encode_event(1.5, -1, EventBody::Scalar { tag: "x", value: 0.0 });
        assert_eq!(
            bytes,
            hex("09 00 00 00 00 00 00 f8 3f 10 ff ff ff ff ff ff ff ff ff 01 2a 0a 0a 08 0a 01 78 15 00 00 00 00")
        );
        let mut scalars = Vec::new();
        decode_event(&bytes, &mut scalars).expect("decodes");
        assert_eq!(scalars, vec![("x".to_string(), -1, 0.0)]);
    }

    #[test]
    fn crc32c_matches_published_check_values() {
        // The CRC-32C check value ("123456789") from the CRC catalogue, and RFC 3720 B.4.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46dd_794e);
        assert_eq!(crc32c(&[]), 0);
    }

    #[test]
    fn masking_rotates_right_by_15_and_adds_the_constant() {
        // c = 0xe3069283: c >> 15 = 0x0001_c60d; c << 17 keeps the low 15 bits 0x1283 as
        // 0x2506_0000; OR = 0x2507_c60d; + 0xa282_ead8 = 0xc78a_b0e5 (no carry out of 32 bits).
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn framed_record_matches_tensorboard_record_writer() {
        // length 27 as u64 LE, its masked CRC32C, the event, the event's masked CRC32C.
        let event = encode_event(1.5, 300, EventBody::Scalar { tag: "loss", value: 0.25 });
        let expected = hex(
            "1b 00 00 00 00 00 00 00 1a 0d 9e 13 \
             09 00 00 00 00 00 00 f8 3f 10 ac 02 2a 0d 0a 0b 0a 04 6c 6f 73 73 15 00 00 80 3e \
             99 08 de ed",
        );
        assert_eq!(frame_record(&event), expected);
    }

    /// Scalars whose f32 bit patterns are all distinct and awkward.
    fn awkward_scalars() -> Vec<(String, i64, f32)> {
        vec![
            ("loss".into(), 0, std::f32::consts::LN_10),
            ("loss".into(), 1, 0.1),
            ("accuracy".into(), 1, f32::MIN_POSITIVE),
            ("accuracy".into(), -7, -0.0),
            ("lr".into(), i64::MAX, f32::INFINITY),
            ("lr".into(), i64::MIN, f32::NAN),
            ("épreuve/τ".into(), 1 << 40, -1.0e-38),
        ]
    }

    fn same_bits(a: &[(String, i64, f32)], b: &[(String, i64, f32)]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| x.0 == y.0 && x.1 == y.1 && x.2.to_bits() == y.2.to_bits())
    }

    #[test]
    fn scalars_read_back_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = EventWriter::new(dir.path()).expect("writer");
        let scalars = awkward_scalars();
        for (tag, step, value) in &scalars {
            writer.add_scalar(tag, *step, *value).expect("write");
        }
        writer.flush().expect("flush");
        assert!(same_bits(&read_scalars(writer.path()).expect("read"), &scalars));
        // The folder reads the same.
        assert!(same_bits(&read_scalars(dir.path()).expect("read dir"), &scalars));
    }

    #[test]
    fn file_starts_with_the_file_version_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = EventWriter::new(dir.path()).expect("writer");
        let bytes = fs::read(writer.path()).expect("read");
        let length = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        assert_eq!(bytes.len(), 12 + length + 4, "one record, flushed");
        let event = &bytes[12..12 + length];
        // wall_time (key 09 and 8 bytes), then key 1a, length 13, "brain.Event:2".
        assert_eq!(event[0], 0x09);
        assert_eq!(&event[9..11], &[0x1a, 0x0d]);
        assert_eq!(&event[11..], b"brain.Event:2");
        let wall_time = f64::from_le_bytes(event[1..9].try_into().expect("8 bytes"));
        assert!((wall_time - now()).abs() < 60.0, "wall time {wall_time} is now");
    }

    #[test]
    fn file_is_named_as_tensorflow_names_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = EventWriter::new(dir.path()).expect("writer");
        let second = EventWriter::new(dir.path()).expect("writer");
        assert_ne!(first.path(), second.path(), "two writers in one second get two files");
        let name = first.path().file_name().expect("name").to_string_lossy().into_owned();
        let rest = name.strip_prefix("events.out.tfevents.").expect("prefix");
        let parts: Vec<&str> = rest.split('.').collect();
        let seconds: f64 = parts[0].parse().expect("seconds");
        assert_eq!(parts[0].len(), 10);
        assert!((seconds - now()).abs() < 60.0);
        assert_eq!(parts[parts.len() - 2], std::process::id().to_string());
        assert!(parts[parts.len() - 1].parse::<u64>().is_ok());
        assert!(!parts[1..parts.len() - 2].join(".").is_empty(), "hostname");
    }

    #[test]
    fn empty_tag_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = EventWriter::new(dir.path()).expect("writer");
        let error = writer.add_scalar("", 0, 1.0).expect_err("empty tag");
        assert!(error.to_string().contains("tag"), "{error}");
    }

    fn written_file(dir: &Path) -> (PathBuf, Vec<u8>) {
        let mut writer = EventWriter::new(dir).expect("writer");
        writer.add_scalar_at("loss", 1, 0.5, 1.5).expect("write");
        writer.add_scalar_at("loss", 2, 0.25, 2.5).expect("write");
        writer.flush().expect("flush");
        let path = writer.path().to_path_buf();
        let bytes = fs::read(&path).expect("read");
        (path, bytes)
    }

    /// Where each record of an event file ends, from the lengths in the records' headers.
    fn record_ends(bytes: &[u8]) -> Vec<usize> {
        let mut ends = vec![];
        let mut pos = 0;
        while pos < bytes.len() {
            pos += 12 + u64::from_le_bytes(bytes[pos..pos + 8].try_into().expect("8 bytes")) as usize + 4;
            ends.push(pos);
        }
        ends
    }

    #[test]
    fn corrupt_byte_is_a_crc_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, bytes) = written_file(dir.path());
        let ends = record_ends(&bytes);
        let (second, length) = (ends[0], ends[1] - ends[0] - 16); // the first scalar record
        for (offset, what) in [
            (second, "length CRC32C mismatch"),                  // in the length
            (second + 9, "length CRC32C mismatch"),              // in the length's CRC
            (second + 12 + 3, "data CRC32C mismatch"),           // in the event
            (second + 12 + length + 1, "data CRC32C mismatch"),  // in the event's CRC
        ] {
            let mut corrupt = bytes.clone();
            corrupt[offset] ^= 0x10;
            fs::write(&path, &corrupt).expect("write");
            let message = read_scalars(&path).expect_err("corrupt").to_string();
            assert!(message.contains(what), "byte {offset}: {message}");
            assert!(message.contains("record 1 at byte"), "byte {offset}: {message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
    }

    #[test]
    fn truncated_last_record_ends_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, bytes) = written_file(dir.path());
        let all = read_scalars(&path).expect("read");
        assert_eq!(all, vec![("loss".to_string(), 1, 0.5), ("loss".to_string(), 2, 0.25)]);
        let ends = record_ends(&bytes);
        assert_eq!(ends.len(), 3);
        for cut in 0..bytes.len() {
            let scalars = scalars_in(&bytes[..cut]).expect("a cut is not corruption");
            assert_eq!(scalars.as_slice(), &all[..usize::from(cut >= ends[1])], "cut at {cut}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, valid) = written_file(dir.path());
        for _ in 0..20_000 {
            // Random bytes (caught by the length CRC) ...
            let len = rng.random_range(0..64);
            let noise: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let _ = scalars_in(&noise);
            // ... random events in valid framing (reach the protobuf decoder) ...
            let _ = scalars_in(&frame_record(&noise));
            // ... and a valid file with one byte changed.
            let mut changed = valid.clone();
            let at = rng.random_range(0..changed.len());
            changed[at] = rng.random();
            let _ = scalars_in(&changed);
            // Framed events with a byte of a real event changed, which keep the CRCs valid.
            let mut event = encode_event(1.5, 300, EventBody::Scalar { tag: "loss", value: 0.25 });
            let at = rng.random_range(0..event.len());
            event[at] = rng.random();
            let _ = scalars_in(&frame_record(&event));
        }
    }

    #[test]
    fn malformed_events_are_errors() {
        for (event, what) in [
            (hex("10 ff ff ff ff ff ff ff ff ff ff 01"), "varint longer than 10 bytes"),
            (hex("10 80"), "varint runs past the end"),
            (hex("2a 05 0a"), "field of 5 bytes with only 1 left"),
            (hex("0b"), "unsupported wire type 3"),
            (hex("00 00"), "field number 0"),
            (hex("15 00 00 00 00"), "Event field 2 has the wrong wire type"),
            (hex("2a 05 0a 03 0a ff 01"), "field of 255 bytes with only 0 left"),
            (hex("2a 05 0a 03 0a 01 ff"), "tag is not UTF-8"),
            (hex("2a 06 0a 04 10 01 10 01"), "Summary.Value field 2 has the wrong wire type"),
        ] {
            let message = scalars_in(&frame_record(&event)).expect_err("malformed");
            assert!(message.contains(what), "{event:02x?}: {message}");
            assert!(message.starts_with("record 0 at byte 0: malformed Event"), "{message}");
        }
    }

    #[test]
    fn unknown_fields_and_other_summaries_are_skipped() {
        // Event{step: 4 (after the summary), source_metadata-like field 10 (bytes), summary
        // with a Value of another kind (field 8, a tensor) and one simple_value}.
        //   2a 11                      summary, 17 bytes:
        //     0a 05 0a 01 61 42 00     Value{tag "a", field 8 (wire type 2: 8<<3|2 = 0x42), empty}
        //     0a 08 0a 01 62 15 …      Value{tag "b", simple_value 1.0 = 0x3F80_0000}
        //   52 01 00                   field 10 (10<<3|2 = 0x52), one byte
        //   10 04                      step 4
        let event = hex("2a 11 0a 05 0a 01 61 42 00 0a 08 0a 01 62 15 00 00 80 3f 52 01 00 10 04");
        assert_eq!(scalars_in(&frame_record(&event)), Ok(vec![("b".to_string(), 4, 1.0)]));
    }

    #[test]
    fn log_dir_follows_keras_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut logs = LogDir::new(dir.path().join("run"));
        assert!(!logs.root().exists(), "nothing written before the first epoch");
        logs.log_epoch(0, &[("loss", 2.0), ("accuracy", 0.25), ("learning_rate", 0.1)]).expect("epoch 0");
        assert!(!logs.root().join("validation").exists(), "no validation logs, no validation run");
        logs.log_epoch(1, &[("loss", 1.5), ("val_loss", 1.75), ("val_accuracy", 0.5)]).expect("epoch 1");
        let train = read_scalars(logs.root().join("train")).expect("train");
        let validation = read_scalars(logs.root().join("validation")).expect("validation");
        let row = |tag: &str, step, value| (tag.to_string(), step, value);
        assert_eq!(
            train,
            vec![
                row("epoch_loss", 0, 2.0),
                row("epoch_accuracy", 0, 0.25),
                row("epoch_learning_rate", 0, 0.1),
                row("epoch_loss", 1, 1.5)
            ]
        );
        assert_eq!(validation, vec![row("epoch_loss", 1, 1.75), row("epoch_accuracy", 1, 0.5)]);
    }
}
