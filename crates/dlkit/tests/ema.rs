//! The exponential moving average of the weights: updates against hand arithmetic (fused CPU
//! pass and tensor ops), torch-ema's warm-up, apply/restore and swap round trips, batch-norm
//! statistics in or out, and checkpoint state.

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;
use dlkit::optim::{EmaConfig, RunningStats, WeightEma};

/// Weights after each of three "optimizer steps", starting from [1, −2].
const STEPS: [[f64; 2]; 3] = [[2.0, 0.0], [0.0, 4.0], [1.0, 1.0]];

fn var(values: [f64; 2], dtype: DType) -> Result<Var> {
    Var::from_tensor(&Tensor::new(&values, &Device::Cpu)?.to_dtype(dtype)?)
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

/// Three updates of an EMA of one variable `w` = [1, −2] that takes the values `STEPS`.
fn three_updates(config: EmaConfig, dtype: DType) -> Result<Vec<Vec<f64>>> {
    let w = var([1.0, -2.0], dtype)?;
    let mut ema = WeightEma::new(vec![("w".into(), w.clone())], config)?;
    let mut out = Vec::new();
    for step in STEPS {
        w.set(&Tensor::new(&step, &Device::Cpu)?.to_dtype(dtype)?)?;
        ema.update()?;
        out.push(values(ema.shadow("w").unwrap()));
    }
    assert_eq!(ema.updates(), 3);
    Ok(out)
}

#[test]
fn update_matches_hand_arithmetic_over_three_steps() -> Result<()> {
    // d = 0.9, shadow₀ = [1, −2]:
    // 1: 0.9·[1, −2] + 0.1·[2, 0]        = [1.1, −1.8]
    // 2: 0.9·[1.1, −1.8] + 0.1·[0, 4]    = [0.99, −1.22]
    // 3: 0.9·[0.99, −1.22] + 0.1·[1, 1]  = [0.991, −0.998]
    let expected = [[1.1, -1.8], [0.99, -1.22], [0.991, -0.998]];
    let config = EmaConfig::new(0.9).map_err(candle_core::Error::from)?;
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-6)] {
        let got = three_updates(config, dtype)?;
        for (g, e) in got.iter().zip(&expected) {
            assert!(close(g, e, tol), "{dtype:?}: {got:?} vs {expected:?}");
        }
    }
    Ok(())
}

#[test]
fn warm_up_follows_torch_ema() -> Result<()> {
    // torch-ema: d = min(decay, (1 + n)/(10 + n)): 2/11, 3/12, 4/13 for n = 1, 2, 3.
    // 1: (2/11)·[1, −2] + (9/11)·[2, 0]     = [20/11, −4/11]
    // 2: (1/4)·[20/11, −4/11] + (3/4)·[0, 4] = [5/11, 32/11]
    // 3: (4/13)·[5/11, 32/11] + (9/13)·[1, 1] = [119/143, 227/143]
    let config = EmaConfig { warmup: true, ..EmaConfig::new(0.999).map_err(candle_core::Error::from)? };
    assert!((config.decay_at(1) - 2.0 / 11.0).abs() < 1e-15);
    assert!((config.decay_at(1000) - 1001.0 / 1010.0).abs() < 1e-15);
    assert_eq!(config.decay_at(100_000), 0.999);
    let expected = [[20.0 / 11.0, -4.0 / 11.0], [5.0 / 11.0, 32.0 / 11.0], [119.0 / 143.0, 227.0 / 143.0]];
    let got = three_updates(config, DType::F32)?;
    for (g, e) in got.iter().zip(&expected) {
        assert!(close(g, e, 1e-6), "{got:?} vs {expected:?}");
    }
    Ok(())
}

/// A map with a weight, a bias and a batch norm's running mean.
fn model_vars(dtype: DType) -> Result<VarMap> {
    let varmap = VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu);
    vb.get_with_hints(2, "layer.weight", candle_nn::Init::Const(1.0))?;
    vb.get_with_hints(2, "layer.bias", candle_nn::Init::Const(0.0))?;
    vb.get_with_hints(2, "bn.running_mean", candle_nn::Init::Const(0.0))?;
    Ok(varmap)
}

fn get(varmap: &VarMap, name: &str) -> Var {
    varmap.data().lock().unwrap()[name].clone()
}

#[test]
fn apply_restore_and_swap_round_trip() -> Result<()> {
    let varmap = model_vars(DType::F32)?;
    let mut ema = WeightEma::from_varmap(&varmap, EmaConfig::new(0.5).map_err(candle_core::Error::from)?)?;
    assert_eq!(ema.names(), ["bn.running_mean", "layer.bias", "layer.weight"]);
    let weight = get(&varmap, "layer.weight");
    // The model tensor shares storage with the variable, as a layer's weight does.
    let seen_by_model = weight.as_tensor().clone();
    weight.set(&Tensor::new(&[3f32, 5.0], &Device::Cpu)?)?;
    ema.update()?; // average = 0.5·[1, 1] + 0.5·[3, 5] = [2, 3]

    ema.apply()?;
    assert_eq!(values(&seen_by_model), [2.0, 3.0], "the model sees the averages");
    assert!(ema.update().is_err(), "no update while the averages are in place");
    assert!(ema.swap().is_err());
    ema.restore()?;
    assert_eq!(values(&seen_by_model), [3.0, 5.0], "the raw weights are back");
    assert!(ema.restore().is_err(), "nothing left to restore");

    ema.swap()?;
    assert_eq!(values(&seen_by_model), [2.0, 3.0]);
    assert_eq!(values(ema.shadow("layer.weight").unwrap()), [2.0, 3.0], "shadow() still gives the average");
    ema.swap()?;
    assert_eq!(values(&seen_by_model), [3.0, 5.0]);
    ema.update()?; // 0.5·[2, 3] + 0.5·[3, 5] = [2.5, 4]: the average survived the swaps
    assert_eq!(values(ema.shadow("layer.weight").unwrap()), [2.5, 4.0]);
    Ok(())
}

#[test]
fn running_statistics_are_averaged_or_left_to_the_model() -> Result<()> {
    let varmap = model_vars(DType::F32)?;
    let config = EmaConfig::new(0.5).map_err(candle_core::Error::from)?;
    let mut timm = WeightEma::from_varmap(&varmap, config)?;
    let mut torch_ema =
        WeightEma::from_varmap(&varmap, EmaConfig { running_stats: RunningStats::Current, ..config })?;
    assert_eq!(torch_ema.names(), ["layer.bias", "layer.weight"]);
    let mean = get(&varmap, "bn.running_mean");
    mean.set(&Tensor::new(&[4f32, -4.0], &Device::Cpu)?)?;
    timm.update()?;
    torch_ema.update()?;
    torch_ema.apply()?;
    assert_eq!(values(mean.as_tensor()), [4.0, -4.0], "torch-ema: the model's own statistics");
    torch_ema.restore()?;
    timm.apply()?;
    assert_eq!(values(mean.as_tensor()), [2.0, -2.0], "timm ModelEmaV2: averaged statistics");
    timm.restore()?;
    Ok(())
}

#[test]
fn state_round_trip_restores_the_averages_and_the_counter() -> Result<()> {
    let config = EmaConfig { warmup: true, ..EmaConfig::new(0.99).map_err(candle_core::Error::from)? };
    let (w1, w2) = (var([1.0, -2.0], DType::F32)?, var([7.0, 7.0], DType::F32)?);
    let mut saved = WeightEma::new(vec![("w".into(), w1.clone())], config)?;
    let mut loaded = WeightEma::new(vec![("w".into(), w2.clone())], config)?;
    for step in &STEPS[..2] {
        w1.set(&Tensor::new(step, &Device::Cpu)?.to_dtype(DType::F32)?)?;
        saved.update()?;
    }
    let state: HashMap<String, Tensor> = saved.state()?.into_iter().collect();
    assert_eq!(state.len(), 2, "ema.updates and ema.w");
    loaded.load_state(&state)?;
    assert_eq!(loaded.updates(), 2);
    assert_eq!(values(loaded.shadow("w").unwrap()), values(saved.shadow("w").unwrap()));
    // The next update uses the restored counter (warm-up decay 4/13) and average.
    w1.set(&Tensor::new(&[1f32, 1.0], &Device::Cpu)?)?;
    w2.set(&Tensor::new(&[1f32, 1.0], &Device::Cpu)?)?;
    saved.update()?;
    loaded.update()?;
    assert_eq!(values(loaded.shadow("w").unwrap()), values(saved.shadow("w").unwrap()));
    assert!(close(&values(saved.shadow("w").unwrap()), &[119.0 / 143.0, 227.0 / 143.0], 1e-6));

    // A state whose tensor has another shape is refused and changes nothing.
    let mut bad = state.clone();
    bad.insert("ema.w".into(), Tensor::zeros(3, DType::F32, &Device::Cpu)?);
    let before = values(loaded.shadow("w").unwrap());
    assert!(loaded.load_state(&bad).is_err());
    bad.remove("ema.w");
    assert!(loaded.load_state(&bad).is_err(), "missing entry");
    assert_eq!(values(loaded.shadow("w").unwrap()), before);
    assert_eq!(loaded.updates(), 3);
    Ok(())
}

#[test]
fn bad_decay_is_refused() {
    for decay in [1.0, -0.1, f64::NAN] {
        let message = EmaConfig::new(decay).unwrap_err().to_string();
        assert!(message.contains("decay"), "{message}");
    }
}
