//! PyTorch's cosine annealing, warm restarts (SGDR) and multi-step schedulers: values worked out
//! by hand, and against PyTorch's own schedulers (`python3 bench/resnet_d_reference.py`, torch
//! 2.15, base rate 0.1, `scheduler.step()` once per epoch, lr read before each epoch's step).

use dlkit::schedule::{CosineAnnealing, CosineWarmRestarts, LrSchedule, MultiStep, StepUnit};
use dlkit::Result;

fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-12 * want.abs().max(1e-3), "{what}: got {got}, want {want}");
}

#[test]
fn cosine_annealing_by_hand() -> Result<()> {
    // lr(t) = 0.001 + 0.099·(1 + cos(π·t/10))/2:
    // t = 0: 0.1; t = 5: cos(π/2) = 0 → 0.001 + 0.0495 = 0.0505; t = 10: cos π = −1 → 0.001;
    // t = 20: cos 2π = 1 → 0.1 again (PyTorch keeps following the cosine after T_max).
    let s = CosineAnnealing::new(0.1, 10, 0.001)?;
    for (t, lr) in [(0, 0.1), (5, 0.0505), (10, 0.001), (15, 0.0505), (20, 0.1)] {
        assert_close(s.lr_at(t), lr, &format!("t = {t}"));
    }
    // t = 2: cos(π/5) = 0.80901699 → 0.001 + 0.099·0.90450850 = 0.08954634.
    assert_close(s.lr_at(2), 0.001 + 0.099 * (1.0 + (std::f64::consts::PI / 5.0).cos()) / 2.0, "t = 2");
    Ok(())
}

#[test]
fn cosine_annealing_matches_pytorch() -> Result<()> {
    // CosineAnnealingLR(T_max=10, eta_min=0.001), epochs 0..24 (PyTorch's recursive form; its
    // rounding drifts by ~1e-15 after T_max, hence the 1e-12 tolerance).
    let torch = [
        0.1, 0.09757729755661011, 0.0905463412215599, 0.07959536998847742, 0.0657963412215599, 0.0505,
        0.03520365877844011, 0.02140463001152259, 0.010453658778440109, 0.0034227024433899004, 0.001,
        0.0034227024433899004, 0.01045365877844014, 0.02140463001152267, 0.035203658778440255,
        0.05050000000000022, 0.06579634122156018, 0.07959536998847777, 0.09054634122156031,
        0.09757729755661054, 0.10000000000000045, 0.09757729755661054, 0.09054634122156033,
        0.07959536998847778, 0.0657963412215602,
    ];
    let mut s = CosineAnnealing::new(0.1, 10, 0.001)?;
    for (epoch, lr) in torch.into_iter().enumerate() {
        assert_close(s.at_epoch(epoch).unwrap_or(f64::NAN), lr, &format!("epoch {epoch}"));
    }
    Ok(())
}

#[test]
fn warm_restarts_by_hand() -> Result<()> {
    // T_0 = 3, T_mult = 2: periods 3, 6, 12 start at t = 0, 3, 9, 21.
    let s = CosineWarmRestarts::new(0.1, 3, 2, 0.001)?;
    for (t, position) in [(0, (0, 3)), (2, (2, 3)), (3, (0, 6)), (8, (5, 6)), (9, (0, 12)), (20, (11, 12)), (21, (0, 24))] {
        assert_eq!(s.position(t), position, "t = {t}");
    }
    // t = 1: T_cur/T_i = 1/3, cos(π/3) = 0.5 → 0.001 + 0.099·0.75 = 0.07525;
    // t = 6: 3/6, cos(π/2) = 0 → 0.0505; each restart returns to 0.1.
    for (t, lr) in [(0, 0.1), (1, 0.07525), (3, 0.1), (6, 0.0505), (9, 0.1), (15, 0.0505), (21, 0.1)] {
        assert_close(s.lr_at(t), lr, &format!("t = {t}"));
    }
    Ok(())
}

#[test]
fn warm_restarts_match_pytorch() -> Result<()> {
    // CosineAnnealingWarmRestarts(T_0=3, T_mult=2, eta_min=0.001), epochs 0..22.
    let torch = [
        0.1, 0.07525000000000001, 0.025750000000000012, 0.1, 0.09336825748732973, 0.07525000000000001, 0.0505,
        0.025750000000000012, 0.007631742512670284, 0.1, 0.09831332840130888, 0.09336825748732973,
        0.0855017856687341, 0.07525000000000001, 0.06331154273257478, 0.0505, 0.03768845726742523,
        0.025750000000000012, 0.0154982143312659, 0.007631742512670284, 0.0026866715986911243, 0.1,
        0.09957652063800362,
    ];
    let mut s = CosineWarmRestarts::new(0.1, 3, 2, 0.001)?;
    for (epoch, lr) in torch.into_iter().enumerate() {
        assert_close(s.at_epoch(epoch).unwrap_or(f64::NAN), lr, &format!("epoch {epoch}"));
    }
    // CosineAnnealingWarmRestarts(T_0=4) (T_mult = 1, eta_min = 0), epochs 0..9.
    let torch = [
        0.1, 0.08535533905932738, 0.05, 0.014644660940672627, 0.1, 0.08535533905932738, 0.05,
        0.014644660940672627, 0.1, 0.08535533905932738,
    ];
    let s = CosineWarmRestarts::new(0.1, 4, 1, 0.0)?;
    for (epoch, lr) in torch.into_iter().enumerate() {
        assert_close(s.lr_at(epoch), lr, &format!("T_mult 1, epoch {epoch}"));
    }
    Ok(())
}

#[test]
fn multi_step_matches_pytorch_and_hand_values() -> Result<()> {
    // MultiStepLR(milestones=[3, 6, 6, 9], gamma=0.5): 0.1 until epoch 2, ×0.5 from 3,
    // ×0.5² more from 6 (listed twice), ×0.5 from 9 — PyTorch prints exactly these.
    let torch = [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.0125, 0.0125, 0.0125, 0.00625, 0.00625];
    let mut s = MultiStep::new(0.1, vec![3, 6, 6, 9], 0.5)?;
    for (epoch, lr) in torch.into_iter().enumerate() {
        assert_close(s.at_epoch(epoch).unwrap_or(f64::NAN), lr, &format!("epoch {epoch}"));
    }
    Ok(())
}

#[test]
fn the_step_unit_decides_which_question_is_answered() -> Result<()> {
    let mut per_epoch = CosineAnnealing::new(0.1, 10, 0.0)?;
    assert_eq!(per_epoch.at_iteration(5), None);
    assert!(per_epoch.at_epoch(5).is_some());
    // Per iteration: t_max counts iterations over the whole run (e.g. 100 epochs × 390 batches).
    let mut per_iteration = CosineAnnealing::new(0.1, 39_000, 0.0)?.per_iteration();
    assert_eq!(per_iteration.unit, StepUnit::Iteration);
    assert_eq!(per_iteration.at_epoch(3), None);
    assert_close(per_iteration.at_iteration(19_500).unwrap_or(f64::NAN), 0.05, "halfway");
    let mut sgdr: Box<dyn LrSchedule> = Box::new(CosineWarmRestarts::new(0.1, 390, 2, 0.0)?.per_iteration());
    assert_close(sgdr.at_iteration(390).unwrap_or(f64::NAN), 0.1, "restart after one epoch of batches");
    let mut steps = MultiStep::new(0.1, vec![1000], 0.1)?.per_iteration();
    assert_close(steps.at_iteration(1000).unwrap_or(f64::NAN), 0.01, "milestone in iterations");
    assert_eq!(steps.at_epoch(0), None);
    Ok(())
}

#[test]
fn schedules_serialise_and_old_records_default_to_epochs() -> Result<()> {
    let s = CosineWarmRestarts::new(0.05, 10, 2, 1e-4)?.per_iteration();
    let json = serde_json::to_string(&s).map_err(|e| dlkit::Error::Config(e.to_string()))?;
    assert_eq!(serde_json::from_str::<CosineWarmRestarts>(&json).ok(), Some(s));
    let old: CosineAnnealing = serde_json::from_str(r#"{"base_lr":0.1,"t_max":200,"eta_min":0.0}"#)
        .map_err(|e| dlkit::Error::Config(e.to_string()))?;
    assert_eq!(old.unit, StepUnit::Epoch);
    Ok(())
}

#[test]
fn bad_hyperparameters_name_the_field() {
    let message = |r: Result<()>| r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message(CosineAnnealing::new(0.1, 0, 0.0).map(drop)).contains("t_max"));
    assert!(message(CosineAnnealing::new(0.1, 10, 0.2).map(drop)).contains("eta_min"));
    assert!(message(CosineAnnealing::new(0.1, 10, -1e-3).map(drop)).contains("eta_min"));
    assert!(message(CosineAnnealing::new(f64::NAN, 10, 0.0).map(drop)).contains("learning rate"));
    assert!(message(CosineWarmRestarts::new(0.1, 0, 1, 0.0).map(drop)).contains("t_0"));
    assert!(message(CosineWarmRestarts::new(0.1, 5, 0, 0.0).map(drop)).contains("t_mult"));
    assert!(message(MultiStep::new(0.1, vec![5, 3], 0.1).map(drop)).contains("milestones"));
    assert!(message(MultiStep::new(0.1, vec![3], 0.0).map(drop)).contains("gamma"));
    assert!(message(MultiStep::new(0.1, vec![3], 1.5).map(drop)).contains("gamma"));
}
