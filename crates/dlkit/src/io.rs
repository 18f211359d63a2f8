//! File I/O in one place: atomic writes, JSON records (non-finite numbers included) and
//! safetensors weights. Run records, saved results, checkpoints, charts and image grids all
//! write through [`write_atomically`], so an interrupted run never leaves a half-written file.

use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Create `path` by letting `write` fill a temporary file beside it, syncing it to disk, then
/// renaming it into place. Parent folders are created. On any failure (the write, the sync or
/// the rename) the temporary file is removed and the error names `path`, the file asked for.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file = path
        .file_name()
        .ok_or_else(|| Error::Config(format!("{} is not a file path", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = temporary_path(dir, &file.to_string_lossy());
    let result = write(&tmp)
        .map_err(|e| renamed(e, &tmp, path))
        .and_then(|()| sync(&tmp).map_err(|e| Error::io(path, e)))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A hidden temporary name beside the target, unique within this process and across processes.
fn temporary_path(dir: &Path, file: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{file}.tmp{}-{n}", std::process::id()))
}

/// Flush a written file to disk, so a rename after a crash never exposes an empty file.
fn sync(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new().write(true).open(path)?.sync_all()
}

/// An error about the temporary file, told as an error about the file the caller asked for.
fn renamed(error: Error, tmp: &Path, target: &Path) -> Error {
    match error {
        Error::Io { path, source } if path == tmp => Error::Io { path: target.into(), source },
        Error::BadFile { path, reason } if path == tmp => Error::BadFile { path: target.into(), reason },
        Error::Json { path, source } if path == tmp => Error::Json { path: target.into(), source },
        other => other,
    }
}

/// Write `bytes` to `path` atomically (see [`write_atomically`]).
pub fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, |tmp| {
        let mut file = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        file.write_all(bytes).map_err(|e| Error::io(tmp, e))
    })
}

/// Write `value` as pretty JSON to `path`, atomically. Non-finite numbers in records are
/// written as the strings `"NaN"`, `"Infinity"` and `"-Infinity"` (see [`crate::serde_float`]).
pub fn write_json<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| Error::Json { path: path.into(), source: e })?;
    write_bytes_atomically(path, &json)
}

/// Read a JSON file written by [`write_json`]; errors name the file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Json { path: path.into(), source: e })
}

/// Save every variable of `varmap` to a safetensors file, atomically.
pub fn save_varmap(varmap: &VarMap, path: &Path) -> Result<()> {
    write_atomically(path, |tmp| {
        varmap.save(tmp).map_err(|e| Error::bad_file(tmp, format!("cannot write weights: {e}")))
    })
}

/// Load the variables of `varmap` from a safetensors file written by [`save_varmap`]: every
/// variable must be in the file with its shape.
pub fn load_varmap(varmap: &VarMap, path: &Path) -> Result<()> {
    let tensors = load_tensors(path, &Device::Cpu)?;
    let data = varmap.data().lock().map_err(|_| Error::Config("VarMap lock poisoned".into()))?;
    for (name, var) in data.iter() {
        let saved = tensors
            .get(name)
            .ok_or_else(|| Error::bad_file(path, format!("has no weights for `{name}` (saved by another model?)")))?;
        if saved.dims() != var.dims() {
            return Err(Error::bad_file(
                path,
                format!("`{name}` has shape {:?}, the model's is {:?}", saved.dims(), var.dims()),
            ));
        }
        var.set(&saved.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    Ok(())
}

/// Save named tensors to a safetensors file, atomically (moved to the CPU first).
pub fn save_tensors(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    let mut map = HashMap::new();
    for (name, t) in tensors {
        map.insert(name.clone(), t.to_device(&Device::Cpu)?);
    }
    write_atomically(path, |tmp| {
        candle_core::safetensors::save(&map, tmp).map_err(|e| Error::bad_file(tmp, format!("cannot write tensors: {e}")))
    })
}

/// Read every tensor of a safetensors file onto `device`; errors name the file.
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| Error::bad_file(path, format!("not a safetensors file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn failed_write_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let r = write_atomically(&path, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(Error::Config("interrupted".into()))
        });
        assert!(r.is_err());
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn failed_rename_removes_the_temporary_file_and_names_the_target() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: the rename must fail.
        let target = dir.path().join("record.json");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), b"x").unwrap();
        let e = write_json(&target, &serde_json::json!({"a": 1})).unwrap_err().to_string();
        assert!(e.contains("record.json") && !e.contains(".record.json.tmp"), "{e}");
        assert_eq!(names(dir.path()), vec!["record.json".to_string()]);
    }

    #[test]
    fn write_errors_name_the_target_not_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.bin");
        let e = write_atomically(&path, |tmp| Err(Error::io(tmp, std::io::Error::other("disk full"))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("w.bin") && !e.contains(".w.bin.tmp") && e.contains("disk full"), "{e}");
    }

    #[test]
    fn varmap_round_trips_and_a_wrong_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let vm = VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vm, candle_core::DType::F32, &Device::Cpu);
        let w = vb.get_with_hints((2, 3), "w", candle_nn::Init::Const(1.5)).unwrap();
        let path = dir.path().join("weights.safetensors");
        save_varmap(&vm, &path).unwrap();
        vm.data().lock().unwrap()["w"].set(&w.zeros_like().unwrap()).unwrap();
        load_varmap(&vm, &path).unwrap();
        assert_eq!(w.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![1.5; 6]);
        let other = VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&other, candle_core::DType::F32, &Device::Cpu);
        vb.get_with_hints(4, "v", candle_nn::Init::Const(0.0)).unwrap();
        let e = load_varmap(&other, &path).unwrap_err().to_string();
        assert!(e.contains("weights.safetensors") && e.contains("`v`"), "{e}");
    }
}
