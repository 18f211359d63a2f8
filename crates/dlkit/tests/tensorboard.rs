//! TensorBoard event files written by dlkit, read back by TensorBoard's own reader
//! (`scripts/check_tensorboard.py`, PyPI `tensorboard`) and by `read_scalars`.
//! The TensorBoard checks skip, saying so, where `python3 -c "import tensorboard"` fails.

use dlkit::tensorboard::{read_scalars, LogDir};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Three epochs of Keras-style logs: (epoch index, [(name, value)]).
fn epochs() -> Vec<(usize, Vec<(&'static str, f64)>)> {
    vec![
        (0, vec![("loss", 2.3125), ("accuracy", 0.1), ("learning_rate", 0.01), ("val_loss", 2.25), ("val_accuracy", 0.125)]),
        (1, vec![("loss", 1.875), ("accuracy", 0.3333), ("learning_rate", 0.005), ("val_loss", 1.9), ("val_accuracy", 0.31)]),
        (2, vec![("loss", 1.5e-3), ("accuracy", 1.0), ("learning_rate", 1e-7), ("val_loss", 0.0), ("val_accuracy", 0.99)]),
    ]
}

fn write_log(root: &Path) {
    let mut logs = LogDir::new(root);
    for (epoch, values) in epochs() {
        logs.log_epoch(epoch, &values).expect("log epoch");
    }
}

/// The runs, tags and points `epochs()` should give in Keras's layout, as
/// run -> tag -> [[step, value]].
fn expected() -> serde_json::Value {
    let mut runs = serde_json::Map::new();
    for (epoch, values) in epochs() {
        for (name, value) in values {
            let (run, name) = match name.strip_prefix("val_") {
                Some(name) => ("validation", name),
                None => ("train", name),
            };
            let tags = runs.entry(run).or_insert_with(|| serde_json::json!({}));
            let points = tags
                .as_object_mut()
                .expect("object")
                .entry(format!("epoch_{name}"))
                .or_insert_with(|| serde_json::json!([]));
            points.as_array_mut().expect("array").push(serde_json::json!([epoch, value]));
        }
    }
    serde_json::Value::Object(runs)
}

#[test]
fn keras_layout_reads_back_in_rust() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path());
    let train = read_scalars(dir.path().join("train")).expect("train");
    let row = |tag: &str, step: i64, value: f64| (tag.to_string(), step, value as f32);
    assert_eq!(train.len(), 9);
    assert_eq!(train[0], row("epoch_loss", 0, 2.3125));
    assert_eq!(train[5], row("epoch_learning_rate", 1, 0.005));
    assert_eq!(train[8], row("epoch_learning_rate", 2, 1e-7));
    let validation = read_scalars(dir.path().join("validation")).expect("validation");
    assert_eq!(validation.len(), 6);
    assert_eq!(validation[4], row("epoch_loss", 2, 0.0));
    assert_eq!(validation[5], row("epoch_accuracy", 2, 0.99));
}

fn tensorboard_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import tensorboard"])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if !ok {
        // Straight to stderr, not through eprintln!, which the test harness captures.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: `python3 -c \"import tensorboard\"` failed, so TensorBoard's own reader \
             was not run (pip install tensorboard); the pure-Rust tests still ran"
        );
    }
    ok
}

fn check_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/check_tensorboard.py")
}

/// Run the check script on `logdir` against `expected`: (success, its output).
fn check(logdir: &Path, expected: &serde_json::Value) -> (bool, String) {
    let json = logdir.join("expected.json");
    std::fs::write(&json, serde_json::to_vec_pretty(expected).expect("json")).expect("write json");
    let out = Command::new("python3")
        .arg(check_script())
        .arg(logdir)
        .arg(&json)
        .output()
        .expect("run python3");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn tensorboard_reads_the_keras_layout() {
    if !tensorboard_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(&dir.path().join("log"));
    let (ok, output) = check(&dir.path().join("log"), &expected());
    eprintln!("{output}");
    assert!(ok, "TensorBoard's reader disagrees:\n{output}");
    assert!(output.contains("OK: runs, tags, steps and float32 values as expected"), "{output}");
}

#[test]
fn tensorboard_check_fails_on_a_wrong_value_or_a_corrupt_record() {
    if !tensorboard_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    write_log(&log);

    // A value off by one float32 step is caught.
    let mut wrong = expected();
    wrong["validation"]["epoch_accuracy"][1][1] = serde_json::json!(f64::from(0.31f32.next_up()));
    let (ok, output) = check(&log, &wrong);
    assert!(!ok && output.contains("MISMATCH validation/epoch_accuracy step 1"), "{output}");

    // A flipped byte in the last record's data fails TensorBoard's CRC check: it stops
    // reading there, so the last point is missing.
    let file = std::fs::read_dir(log.join("validation"))
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().contains("tfevents"))
        .expect("event file");
    let mut bytes = std::fs::read(&file).expect("read");
    let at = bytes.len() - 8;
    bytes[at] ^= 0x01;
    std::fs::write(&file, &bytes).expect("write");
    let (ok, output) = check(&log, &expected());
    assert!(!ok && output.contains("MISMATCH validation/epoch_accuracy: steps [0, 1], expected [0, 1, 2]"), "{output}");
}
