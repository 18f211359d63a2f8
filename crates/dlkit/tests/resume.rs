//! An interrupted run resumes from its last completed epoch and ends exactly as an
//! uninterrupted run with the same seed: in-process (a callback fails mid-run, as a kernel
//! interrupt would) and across processes (the CLI is killed with SIGKILL and started again).

use candle_core::{DType, Device};
use candle_nn::VarMap;
use dlkit::augment::{Augmentation, ShiftFlip};
use dlkit::callbacks::{Callback, Context, EarlyStopping, ReduceLrOnPlateau, WeightAverage};
use dlkit::data::{Dataset, DeviceData, Normalization};
use dlkit::history::{History, Monitor};
use dlkit::models::{init, Mlp, MlpConfig};
use dlkit::optim::{vars_in_name_order, OptimizerConfig};
use dlkit::schedule::CyclicLr;
use dlkit::train::{Progress, Trainer};
use std::path::Path;

/// Ten classes of 3×32×32 images with seeded noise (learnable, not trivially).
fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut images = Vec::with_capacity(n * 3072);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = (i * 7 + seed as usize) % 10;
        labels.push(c as u8);
        for ch in 0..3 {
            for row in 0..32 {
                for _ in 0..32 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let lit = ch == c % 3 && row / 4 == c % 8;
                    images.push(if lit { 170 } else { 50 } + (state >> 58) as u8);
                }
            }
        }
    }
    Dataset::new(images, labels, (3, 32, 32), (0..10).map(|c| format!("c{c}")).collect()).unwrap()
}

/// Fails at the start of epoch `at` (from 0), as an interrupted kernel would.
struct InterruptAt(Option<usize>);

impl Callback for InterruptAt {
    fn name(&self) -> &str {
        "interrupt"
    }

    fn on_epoch_begin(&mut self, epoch: usize, _ctx: &mut Context) -> dlkit::Result<()> {
        match self.0 {
            Some(at) if at == epoch => Err(dlkit::Error::Config(format!("interrupted at epoch {epoch}"))),
            _ => Ok(()),
        }
    }
}

/// Six epochs of the dropout MLP with Adam, a cyclical rate, shift/flip augmentation, early
/// stopping, LR reduction and a weight average (every kind of state a resume must restore),
/// backed up to `backup`.
fn train(backup: &Path, interrupt: Option<usize>) -> dlkit::Result<(History, Vec<f32>)> {
    let device = Device::Cpu;
    let train = DeviceData::new(&synthetic(320, 1), &device, Normalization::UnitRange)?;
    let val = DeviceData::new(&synthetic(80, 2), &device, Normalization::UnitRange)?;
    let vm = VarMap::new();
    let config = MlpConfig { hidden: vec![64, 32], seed: 4, ..MlpConfig::cifar10().with_dropout() };
    let mlp = Mlp::new(init::seeded(&vm, 4, DType::F32, &device), &config)?;
    let mut adam = OptimizerConfig::from_name("adam", Some(1e-3))?.build(vars_in_name_order(&vm))?;
    let history = Trainer::new(&mlp, &vm, &mut adam)
        .epochs(6)
        .batch_size(32)
        .seed(9)
        .progress(Progress::Quiet)
        .schedule(CyclicLr::triangular(1e-4, 3e-3, 7)?)
        .augment(Augmentation { shift_flip: Some(ShiftFlip::default()), ..Augmentation::none() })
        .callback(EarlyStopping::new(Monitor::ValLoss, 10).restoring_best_weights())
        .callback(ReduceLrOnPlateau::new(Monitor::ValAccuracy, 0.5, 1))
        .callback(WeightAverage::new(&vm, dlkit::optim::EmaConfig::new(0.9)?)?)
        .callback(InterruptAt(interrupt))
        .backup(backup)
        .fit(&train, Some(&val))?;
    let weights = vars_in_name_order(&vm)
        .iter()
        .flat_map(|v| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect();
    Ok((history, weights))
}

/// The figures of a history that do not depend on timing.
fn figures(h: &History) -> Vec<(f64, f64, Option<f64>, Option<f64>, f64, usize, Vec<(String, f64)>)> {
    h.epochs
        .iter()
        .map(|e| (e.train_loss, e.train_acc, e.val_loss, e.val_acc, e.lr, e.batch_size, e.extra.clone().into_iter().collect()))
        .collect()
}

#[test]
fn an_interrupted_run_resumes_and_ends_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, whole_weights) = train(&dir.path().join("a"), None).unwrap();
    assert!(!dir.path().join("a").exists(), "a finished run removes its backup");

    let backup = dir.path().join("b");
    let e = train(&backup, Some(3)).unwrap_err().to_string();
    assert!(e.contains("interrupted at epoch 3"), "{e}");
    assert!(backup.join("epoch-0003/state.json").is_file(), "three epochs were saved");
    // The same configuration, no interruption this time: it picks up after epoch 3.
    let (resumed, resumed_weights) = train(&backup, None).unwrap();
    assert_eq!(figures(&resumed), figures(&whole));
    assert_eq!(resumed_weights, whole_weights, "bit-identical weights");
    assert!(!backup.exists());
}

#[test]
fn a_backup_from_other_callbacks_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b");
    train(&backup, Some(2)).unwrap_err();
    let device = Device::Cpu;
    let data = DeviceData::new(&synthetic(64, 1), &device, Normalization::UnitRange).unwrap();
    let vm = VarMap::new();
    let config = MlpConfig { hidden: vec![64, 32], seed: 4, ..MlpConfig::cifar10().with_dropout() };
    let mlp = Mlp::new(init::seeded(&vm, 4, DType::F32, &device), &config).unwrap();
    let mut adam = OptimizerConfig::from_name("adam", None).unwrap().build(vars_in_name_order(&vm)).unwrap();
    let e = Trainer::new(&mlp, &vm, &mut adam).progress(Progress::Quiet).backup(&backup).fit(&data, None).unwrap_err();
    assert!(e.to_string().contains("state.json") && e.to_string().contains("callbacks"), "{e}");
}

/// A CIFAR-10 binary folder of synthetic images (five training batches and a test batch).
fn write_cifar(root: &Path) {
    let dir = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, n: usize, seed: u64| {
        let d = synthetic(n, seed);
        let mut bytes = Vec::with_capacity(n * 3073);
        for i in 0..n {
            bytes.push(d.labels[i]);
            bytes.extend_from_slice(d.image(i));
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    for (k, name) in dlkit::data::cifar::TRAIN_FILES.iter().enumerate() {
        file(name, 150, 10 + k as u64);
    }
    file(dlkit::data::cifar::TEST_FILE, 100, 20);
}

#[test]
fn the_cli_killed_mid_run_resumes_to_the_same_record() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar(dir.path());
    let run = |out: &Path| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dlkit"));
        cmd.args(["train", "--dataset", "cifar10", "--model", "mlp-dropout", "--optimizer", "adam"])
            .args(["--epochs", "6", "--batch-size", "50", "--validation", "150", "--augment", "shift-flip"])
            .args(["--early-stopping", "20", "--reduce-lr", "2", "--seed", "3"])
            .arg("--out")
            .arg(out)
            .env("DLKIT_DATA", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    };
    let record = |out: &Path| -> serde_json::Value {
        let text = std::fs::read_to_string(out.join("cifar10-mlp-dropout-adam.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let whole_out = dir.path().join("whole");
    assert!(run(&whole_out).status().unwrap().success());

    let out = dir.path().join("killed");
    let mut child = run(&out).spawn().unwrap();
    let run_folder = out.join("cifar10-mlp-dropout-adam");
    let saved_epoch = |n: usize| {
        std::fs::read_dir(&run_folder).into_iter().flatten().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with("backup-") && e.path().join(format!("epoch-{n:04}/state.json")).is_file()
        })
    };
    let start = std::time::Instant::now();
    while !saved_epoch(2) {
        assert!(start.elapsed().as_secs() < 300, "no second epoch saved within 5 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    assert!(!out.join("cifar10-mlp-dropout-adam.json").exists(), "killed before its record was written");
    assert!(run(&out).status().unwrap().success());

    let (a, b) = (record(&whole_out), record(&out));
    let strip = |mut v: serde_json::Value| {
        for e in v["history"]["epochs"].as_array_mut().unwrap() {
            for timing in ["seconds", "augment_seconds", "eval_seconds"] {
                e.as_object_mut().unwrap().remove(timing);
            }
        }
        v["history"]["epochs"].take()
    };
    assert_eq!(a["test"], b["test"]);
    assert_eq!(strip(a), strip(b));
}
