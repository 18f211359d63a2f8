//! Optimizer tests: each update rule against the Keras (tf.keras 2.x) equations worked out here in
//! plain f64 arithmetic, hyperparameter checks, learning-rate changes, state save/restore,
//! choosing by name, and the L2 penalty.
//!
//! Parameters are f64 tensors so the comparison can be tight (1e-10 relative, floor 1e-10 absolute)
//! on the tensor-op path; one test runs every optimizer on f32 tensors (the fused in-place CPU
//! path) with a 1e-5 relative tolerance, the size of f32 rounding accumulated over a few
//! operations, and another checks the fused path against the tensor ops on 40,000 weights.

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::Optimizer;
use dlkit::optim::{
    l2_penalty, vars_in_name_order, AdaDelta, AdaDeltaParams, AdaGrad, AdaGradParams, Adam, AdamParams,
    AnyOptimizer, Nadam, NadamParams, OptimizerConfig, OptimizerState, RmsProp, RmsPropParams, Sgd,
    SgdParams, SlotOptimizer, UpdateRule, OPTIMIZER_NAMES,
};

/// Starting weights.
const W0: [f64; 4] = [0.5, -1.0, 2.0, 0.0];
/// The gradient given at steps 1, 2, 3 (coordinate 0 shrinks at step 3, so AMSGrad's max matters).
const GRADS: [[f64; 4]; 3] = [[0.3, -0.7, 1.2, 0.05], [-0.4, 0.2, 0.9, -1.5], [0.1, -0.6, -0.8, 2.0]];

/// A fresh f64 variable holding `W0`.
fn start_var(dtype: DType) -> Result<Var> {
    Var::from_tensor(&Tensor::new(&W0, &Device::Cpu)?.to_dtype(dtype)?)
}

/// One optimizer step whose gradient is exactly `g`: loss = Σ gᵢ·wᵢ, so ∂loss/∂w = g.
fn step_with<O: Optimizer>(opt: &mut O, w: &Var, g: &[f64; 4]) -> Result<()> {
    let g = Tensor::new(g, &Device::Cpu)?.to_dtype(w.dtype())?;
    let loss = w.as_tensor().mul(&g)?.sum_all()?;
    opt.step(&loss.backward()?)
}

/// The weights as f64.
fn values(w: &Var) -> Result<[f64; 4]> {
    let v = w.as_tensor().to_dtype(DType::F64)?.to_vec1::<f64>()?;
    Ok([v[0], v[1], v[2], v[3]])
}

/// Run three steps (gradients `GRADS`) of optimizer `O` from `W0` and return the weights after each.
fn run<O: Optimizer>(config: O::Config, dtype: DType) -> Result<Vec<[f64; 4]>> {
    let w = start_var(dtype)?;
    let mut opt = O::new(vec![w.clone()], config)?;
    let mut out = Vec::new();
    for g in &GRADS {
        step_with(&mut opt, &w, g)?;
        out.push(values(&w)?);
    }
    Ok(out)
}

/// Assert `actual` matches `expected` elementwise within `rel`·max(1, |expected|), and that every
/// step moved every weight (so the comparison is not trivially true).
fn assert_close(what: &str, actual: &[[f64; 4]], expected: &[[f64; 4]], rel: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: number of steps");
    let mut previous = W0;
    for (t, (a, e)) in actual.iter().zip(expected).enumerate() {
        for i in 0..4 {
            let tol = rel * e[i].abs().max(1.0);
            assert!(
                (a[i] - e[i]).abs() <= tol,
                "{what}: step {} weight {i}: got {}, expected {} (diff {:e})",
                t + 1,
                a[i],
                e[i],
                (a[i] - e[i]).abs()
            );
            assert!((e[i] - previous[i]).abs() > 1e-6, "{what}: step {} weight {i} did not move", t + 1);
        }
        previous = *e;
    }
}

const TIGHT: f64 = 1e-10;

// ---------- references: the Keras equations, step by step in f64 ----------

fn sgd_reference(lr: f64, momentum: f64, nesterov: bool) -> Vec<[f64; 4]> {
    let mut w = W0;
    let mut velocity = [0.0; 4];
    let mut out = Vec::new();
    for g in &GRADS {
        for i in 0..4 {
            velocity[i] = momentum * velocity[i] - lr * g[i];
            if nesterov {
                w[i] = w[i] + momentum * velocity[i] - lr * g[i];
            } else {
                w[i] = w[i] + velocity[i];
            }
        }
        out.push(w);
    }
    out
}

fn adagrad_reference(lr: f64, initial: f64, eps: f64) -> Vec<[f64; 4]> {
    let mut w = W0;
    let mut accumulator = [initial; 4];
    let mut out = Vec::new();
    for g in &GRADS {
        for i in 0..4 {
            accumulator[i] += g[i] * g[i];
            w[i] -= lr * g[i] / (accumulator[i].sqrt() + eps);
        }
        out.push(w);
    }
    out
}

fn rmsprop_reference(lr: f64, rho: f64, momentum: f64, eps: f64, centered: bool) -> Vec<[f64; 4]> {
    let mut w = W0;
    let mut ms = [0.0; 4];
    let mut mg = [0.0; 4];
    let mut mom = [0.0; 4];
    let mut out = Vec::new();
    for g in &GRADS {
        for i in 0..4 {
            ms[i] = rho * ms[i] + (1.0 - rho) * g[i] * g[i];
            let mut denom = ms[i];
            if centered {
                mg[i] = rho * mg[i] + (1.0 - rho) * g[i];
                denom = ms[i] - mg[i] * mg[i];
            }
            if momentum > 0.0 {
                // TensorFlow's ApplyRMSProp: epsilon inside the square root.
                mom[i] = momentum * mom[i] + lr * g[i] / (denom + eps).sqrt();
                w[i] -= mom[i];
            } else {
                // Keras's own dense update: epsilon outside the square root.
                w[i] -= lr * g[i] / (denom.sqrt() + eps);
            }
        }
        out.push(w);
    }
    out
}

fn adam_reference(lr: f64, b1: f64, b2: f64, eps: f64, amsgrad: bool) -> Vec<[f64; 4]> {
    let mut w = W0;
    let mut m = [0.0; 4];
    let mut v = [0.0; 4];
    let mut v_hat = [0.0; 4];
    let mut out = Vec::new();
    for (step, g) in GRADS.iter().enumerate() {
        let t = (step + 1) as i32;
        let lr_t = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
        for i in 0..4 {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            if amsgrad {
                v_hat[i] = if v[i] > v_hat[i] { v[i] } else { v_hat[i] };
                w[i] -= lr_t * m[i] / (v_hat[i].sqrt() + eps);
            } else {
                w[i] -= lr_t * m[i] / (v[i].sqrt() + eps);
            }
        }
        out.push(w);
    }
    out
}

/// Keras 2.x `Nadam._prepare_local` + `_resource_apply_dense`, transcribed term by term.
fn nadam_reference(lr: f64, b1: f64, b2: f64, eps: f64) -> Vec<[f64; 4]> {
    let mut w = W0;
    let mut m = [0.0; 4];
    let mut v = [0.0; 4];
    let mut m_schedule = 1.0;
    let mut out = Vec::new();
    for (step, g) in GRADS.iter().enumerate() {
        let local_step = (step + 1) as f64;
        let next_step = local_step + 1.0;
        let m_t = b1 * (1.0 - 0.5 * 0.96f64.powf(0.004 * local_step));
        let m_t_1 = b1 * (1.0 - 0.5 * 0.96f64.powf(0.004 * next_step));
        let m_schedule_new = m_schedule * m_t;
        m_schedule = m_schedule_new;
        let m_schedule_next = m_schedule_new * m_t_1;
        for i in 0..4 {
            let g_prime = g[i] / (1.0 - m_schedule_new);
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            let m_t_prime = m[i] / (1.0 - m_schedule_next);
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let v_t_prime = v[i] / (1.0 - b2.powf(local_step));
            let m_t_bar = (1.0 - m_t) * g_prime + m_t_1 * m_t_prime;
            w[i] -= lr * m_t_bar / (v_t_prime.sqrt() + eps);
        }
        out.push(w);
    }
    out
}

fn adadelta_reference(lr: f64, rho: f64, eps: f64) -> Vec<[f64; 4]> {
    let mut w = W0;
    let mut accum = [0.0; 4];
    let mut accum_update = [0.0; 4];
    let mut out = Vec::new();
    for g in &GRADS {
        for i in 0..4 {
            accum[i] = rho * accum[i] + (1.0 - rho) * g[i] * g[i];
            let update = (accum_update[i] + eps).sqrt() / (accum[i] + eps).sqrt() * g[i];
            accum_update[i] = rho * accum_update[i] + (1.0 - rho) * update * update;
            w[i] -= lr * update;
        }
        out.push(w);
    }
    out
}

// ---------- update rules ----------

#[test]
fn sgd_plain_matches_equations() -> Result<()> {
    let p = SgdParams { learning_rate: 0.1, ..SgdParams::default() };
    assert_close("sgd", &run::<Sgd>(p, DType::F64)?, &sgd_reference(0.1, 0.0, false), TIGHT);
    assert_close(
        "sgd default",
        &run::<Sgd>(SgdParams::default(), DType::F64)?,
        &sgd_reference(0.01, 0.0, false),
        TIGHT,
    );
    Ok(())
}

#[test]
fn sgd_momentum_matches_equations() -> Result<()> {
    let p = SgdParams { learning_rate: 0.1, momentum: 0.7, nesterov: false, weight_decay: 0.0 };
    assert_close("momentum", &run::<Sgd>(p, DType::F64)?, &sgd_reference(0.1, 0.7, false), TIGHT);
    Ok(())
}

#[test]
fn sgd_nesterov_matches_equations() -> Result<()> {
    let p = SgdParams { learning_rate: 0.1, momentum: 0.7, nesterov: true, weight_decay: 0.0 };
    assert_close("nesterov", &run::<Sgd>(p, DType::F64)?, &sgd_reference(0.1, 0.7, true), TIGHT);
    Ok(())
}

#[test]
fn adagrad_matches_equations() -> Result<()> {
    let p = AdaGradParams { learning_rate: 0.1, initial_accumulator_value: 0.2, epsilon: 0.1 };
    assert_close("adagrad", &run::<AdaGrad>(p, DType::F64)?, &adagrad_reference(0.1, 0.2, 0.1), TIGHT);
    let d = AdaGradParams::default();
    assert_close(
        "adagrad default",
        &run::<AdaGrad>(d, DType::F64)?,
        &adagrad_reference(0.001, 0.1, 1e-7),
        TIGHT,
    );
    Ok(())
}

#[test]
fn rmsprop_plain_matches_equations() -> Result<()> {
    let p = RmsPropParams { learning_rate: 0.1, rho: 0.8, epsilon: 0.1, ..RmsPropParams::default() };
    let expected = rmsprop_reference(0.1, 0.8, 0.0, 0.1, false);
    assert_close("rmsprop", &run::<RmsProp>(p, DType::F64)?, &expected, TIGHT);
    let d = RmsPropParams::default();
    assert_close(
        "rmsprop default",
        &run::<RmsProp>(d, DType::F64)?,
        &rmsprop_reference(0.001, 0.9, 0.0, 1e-7, false),
        TIGHT,
    );
    Ok(())
}

#[test]
fn rmsprop_momentum_and_centered_match_equations() -> Result<()> {
    let p = RmsPropParams { learning_rate: 0.1, rho: 0.8, momentum: 0.5, epsilon: 0.1, centered: false };
    assert_close(
        "rmsprop momentum",
        &run::<RmsProp>(p, DType::F64)?,
        &rmsprop_reference(0.1, 0.8, 0.5, 0.1, false),
        TIGHT,
    );
    let p = RmsPropParams { centered: true, momentum: 0.0, ..p };
    assert_close(
        "rmsprop centered",
        &run::<RmsProp>(p, DType::F64)?,
        &rmsprop_reference(0.1, 0.8, 0.0, 0.1, true),
        TIGHT,
    );
    let p = RmsPropParams { centered: true, momentum: 0.5, ..p };
    assert_close(
        "rmsprop centered momentum",
        &run::<RmsProp>(p, DType::F64)?,
        &rmsprop_reference(0.1, 0.8, 0.5, 0.1, true),
        TIGHT,
    );
    Ok(())
}

#[test]
fn adam_matches_equations() -> Result<()> {
    let p = AdamParams { learning_rate: 0.1, beta_1: 0.8, beta_2: 0.9, epsilon: 0.1, amsgrad: false };
    assert_close("adam", &run::<Adam>(p, DType::F64)?, &adam_reference(0.1, 0.8, 0.9, 0.1, false), TIGHT);
    let d = AdamParams::default();
    assert_close(
        "adam default",
        &run::<Adam>(d, DType::F64)?,
        &adam_reference(0.001, 0.9, 0.999, 1e-7, false),
        TIGHT,
    );
    Ok(())
}

#[test]
fn adam_amsgrad_matches_equations() -> Result<()> {
    let p = AdamParams { learning_rate: 0.1, beta_1: 0.8, beta_2: 0.5, epsilon: 0.1, amsgrad: true };
    let expected = adam_reference(0.1, 0.8, 0.5, 0.1, true);
    assert_close("amsgrad", &run::<Adam>(p, DType::F64)?, &expected, TIGHT);
    // The maximum matters on this problem: plain Adam lands elsewhere at step 3.
    let plain = adam_reference(0.1, 0.8, 0.5, 0.1, false);
    assert!((plain[2][0] - expected[2][0]).abs() > 1e-4);
    Ok(())
}

#[test]
fn every_optimizer_in_f32_matches_equations() -> Result<()> {
    // f32 weights on the CPU take the fused in-place update; f32 rounding (~6e-8 per operation,
    // a dozen operations per step) stays well inside 1e-5.
    let f32_run = DType::F32;
    let sgd = |lr, momentum, nesterov| SgdParams { learning_rate: lr, momentum, nesterov, weight_decay: 0.0 };
    assert_close("sgd f32", &run::<Sgd>(sgd(0.1, 0.0, false), f32_run)?, &sgd_reference(0.1, 0.0, false), 1e-5);
    assert_close("momentum f32", &run::<Sgd>(sgd(0.1, 0.7, false), f32_run)?, &sgd_reference(0.1, 0.7, false), 1e-5);
    assert_close("nesterov f32", &run::<Sgd>(sgd(0.1, 0.7, true), f32_run)?, &sgd_reference(0.1, 0.7, true), 1e-5);
    let p = AdaGradParams { learning_rate: 0.1, initial_accumulator_value: 0.2, epsilon: 0.1 };
    assert_close("adagrad f32", &run::<AdaGrad>(p, f32_run)?, &adagrad_reference(0.1, 0.2, 0.1), 1e-5);
    for (momentum, centered) in [(0.0, false), (0.5, false), (0.0, true), (0.5, true)] {
        let p = RmsPropParams { learning_rate: 0.1, rho: 0.8, momentum, epsilon: 0.1, centered };
        let expected = rmsprop_reference(0.1, 0.8, momentum, 0.1, centered);
        assert_close(&format!("rmsprop f32 μ={momentum} centered={centered}"), &run::<RmsProp>(p, f32_run)?, &expected, 1e-5);
    }
    for amsgrad in [false, true] {
        let p = AdamParams { learning_rate: 0.1, beta_1: 0.8, beta_2: 0.5, epsilon: 0.1, amsgrad };
        assert_close("adam f32", &run::<Adam>(p, f32_run)?, &adam_reference(0.1, 0.8, 0.5, 0.1, amsgrad), 1e-5);
    }
    let p = NadamParams { learning_rate: 0.1, beta_1: 0.8, beta_2: 0.9, epsilon: 0.1 };
    assert_close("nadam f32", &run::<Nadam>(p, f32_run)?, &nadam_reference(0.1, 0.8, 0.9, 0.1), 1e-5);
    let p = AdaDeltaParams { learning_rate: 1.0, rho: 0.8, epsilon: 0.01 };
    assert_close("adadelta f32", &run::<AdaDelta>(p, f32_run)?, &adadelta_reference(1.0, 0.8, 0.01), 1e-5);
    Ok(())
}

#[test]
fn nadam_matches_equations() -> Result<()> {
    let p = NadamParams { learning_rate: 0.1, beta_1: 0.8, beta_2: 0.9, epsilon: 0.1 };
    assert_close("nadam", &run::<Nadam>(p, DType::F64)?, &nadam_reference(0.1, 0.8, 0.9, 0.1), TIGHT);
    let d = NadamParams::default();
    assert_close(
        "nadam default",
        &run::<Nadam>(d, DType::F64)?,
        &nadam_reference(0.001, 0.9, 0.999, 1e-7),
        TIGHT,
    );
    Ok(())
}

#[test]
fn adadelta_matches_equations() -> Result<()> {
    let p = AdaDeltaParams { learning_rate: 1.0, rho: 0.8, epsilon: 0.01 };
    assert_close("adadelta", &run::<AdaDelta>(p, DType::F64)?, &adadelta_reference(1.0, 0.8, 0.01), TIGHT);
    let d = AdaDeltaParams::default();
    // Keras's defaults move AdaDelta weights by only ~3e-7 per step, so compare the displacement.
    let got = run::<AdaDelta>(d, DType::F64)?;
    let want = adadelta_reference(0.001, 0.95, 1e-7);
    for (a, e) in got.iter().zip(&want) {
        for i in 0..4 {
            let (da, de) = (a[i] - W0[i], e[i] - W0[i]);
            assert!(de.abs() > 1e-8 && (da - de).abs() <= 1e-6 * de.abs(), "adadelta default: {da} vs {de}");
        }
    }
    Ok(())
}

/// One step on loss = w²/2 (gradient w) from w = `w0`, the example of the Keras docstrings.
fn keras_doc_example<O: Optimizer>(config: O::Config, w0: f64, steps: usize) -> Result<Vec<f64>> {
    let w = Var::from_tensor(&Tensor::new(&[w0], &Device::Cpu)?)?;
    let mut opt = O::new(vec![w.clone()], config)?;
    let mut out = Vec::new();
    for _ in 0..steps {
        let loss = (w.as_tensor().sqr()? * 0.5)?.sum_all()?;
        opt.backward_step(&loss)?;
        out.push(w.as_tensor().to_vec1::<f64>()?[0]);
    }
    Ok(out)
}

#[test]
fn keras_docstring_examples() -> Result<()> {
    // tf.keras.optimizers.RMSprop(learning_rate=0.1), var = 10: one step gives 9.683772.
    let p = RmsPropParams { learning_rate: 0.1, ..RmsPropParams::default() };
    let w = keras_doc_example::<RmsProp>(p, 10.0, 1)?;
    assert!((w[0] - 9.683772).abs() < 1e-6, "rmsprop {}", w[0]);
    // Adam(learning_rate=0.1), var = 10: 9.9.
    let p = AdamParams { learning_rate: 0.1, ..AdamParams::default() };
    let w = keras_doc_example::<Adam>(p, 10.0, 1)?;
    assert!((w[0] - 9.9).abs() < 1e-6, "adam {}", w[0]);
    // Nadam(learning_rate=0.2), var = 10: "{:.1f}" gives 9.8.
    let p = NadamParams { learning_rate: 0.2, ..NadamParams::default() };
    let w = keras_doc_example::<Nadam>(p, 10.0, 1)?;
    assert_eq!(format!("{:.1}", w[0]), "9.8");
    // SGD(learning_rate=0.1, momentum=0.9), var = 1: the first step moves 0.1, the second 0.18.
    let p = SgdParams { learning_rate: 0.1, momentum: 0.9, nesterov: false, weight_decay: 0.0 };
    let w = keras_doc_example::<Sgd>(p, 1.0, 2)?;
    assert!((1.0 - w[0] - 0.1).abs() < 1e-12 && (w[0] - w[1] - 0.18).abs() < 1e-12, "sgd {w:?}");
    Ok(())
}

// ---------- defaults and hyperparameter checks ----------

#[test]
fn defaults_are_keras_defaults() {
    assert_eq!(SgdParams::default(), SgdParams { learning_rate: 0.01, momentum: 0.0, nesterov: false, weight_decay: 0.0 });
    assert_eq!(
        AdaGradParams::default(),
        AdaGradParams { learning_rate: 0.001, initial_accumulator_value: 0.1, epsilon: 1e-7 }
    );
    assert_eq!(
        RmsPropParams::default(),
        RmsPropParams { learning_rate: 0.001, rho: 0.9, momentum: 0.0, epsilon: 1e-7, centered: false }
    );
    assert_eq!(
        AdamParams::default(),
        AdamParams { learning_rate: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: false }
    );
    assert_eq!(
        NadamParams::default(),
        NadamParams { learning_rate: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }
    );
    assert_eq!(AdaDeltaParams::default(), AdaDeltaParams { learning_rate: 0.001, rho: 0.95, epsilon: 1e-7 });
}

/// Assert building fails and the message names `field`.
fn rejects<O: Optimizer>(config: O::Config, field: &str) {
    match O::new(vec![], config) {
        Ok(_) => panic!("accepted a bad {field}"),
        Err(e) => assert!(e.to_string().contains(field), "message `{e}` does not name {field}"),
    }
}

#[test]
fn bad_hyperparameters_are_rejected() {
    for lr in [-0.1, f64::NAN, f64::INFINITY] {
        rejects::<Sgd>(SgdParams { learning_rate: lr, ..Default::default() }, "learning_rate");
        rejects::<AdaGrad>(AdaGradParams { learning_rate: lr, ..Default::default() }, "learning_rate");
        rejects::<RmsProp>(RmsPropParams { learning_rate: lr, ..Default::default() }, "learning_rate");
        rejects::<Adam>(AdamParams { learning_rate: lr, ..Default::default() }, "learning_rate");
        rejects::<Nadam>(NadamParams { learning_rate: lr, ..Default::default() }, "learning_rate");
        rejects::<AdaDelta>(AdaDeltaParams { learning_rate: lr, ..Default::default() }, "learning_rate");
    }
    for x in [-0.1, 1.0, 1.5, f64::NAN] {
        rejects::<Sgd>(SgdParams { momentum: x, ..Default::default() }, "momentum");
        rejects::<RmsProp>(RmsPropParams { momentum: x, ..Default::default() }, "momentum");
        rejects::<RmsProp>(RmsPropParams { rho: x, ..Default::default() }, "rho");
        rejects::<AdaDelta>(AdaDeltaParams { rho: x, ..Default::default() }, "rho");
        rejects::<Adam>(AdamParams { beta_1: x, ..Default::default() }, "beta_1");
        rejects::<Adam>(AdamParams { beta_2: x, ..Default::default() }, "beta_2");
        rejects::<Nadam>(NadamParams { beta_1: x, ..Default::default() }, "beta_1");
        rejects::<Nadam>(NadamParams { beta_2: x, ..Default::default() }, "beta_2");
    }
    for eps in [0.0, -1e-7, f64::NAN, f64::INFINITY] {
        rejects::<AdaGrad>(AdaGradParams { epsilon: eps, ..Default::default() }, "epsilon");
        rejects::<RmsProp>(RmsPropParams { epsilon: eps, ..Default::default() }, "epsilon");
        rejects::<Adam>(AdamParams { epsilon: eps, ..Default::default() }, "epsilon");
        rejects::<Nadam>(NadamParams { epsilon: eps, ..Default::default() }, "epsilon");
        rejects::<AdaDelta>(AdaDeltaParams { epsilon: eps, ..Default::default() }, "epsilon");
    }
    rejects::<AdaGrad>(
        AdaGradParams { initial_accumulator_value: -0.1, ..Default::default() },
        "initial_accumulator_value",
    );
    // Through the by-name path the error is a configuration error.
    let bad = OptimizerConfig::Adam(AdamParams { beta_2: 1.0, ..Default::default() });
    assert!(matches!(bad.build(vec![]), Err(dlkit::Error::Config(_))));
    // Boundary values that are allowed.
    assert!(Sgd::new(vec![], SgdParams { learning_rate: 0.0, momentum: 0.0, nesterov: true, weight_decay: 0.0 }).is_ok());
    assert!(
        AdaGrad::new(vec![], AdaGradParams { initial_accumulator_value: 0.0, ..Default::default() }).is_ok()
    );
}

// ---------- learning rate changes ----------

#[test]
fn set_learning_rate_takes_effect_at_next_step() -> Result<()> {
    // SGD: Δw = −η·g with the rate in force at that step.
    let w = start_var(DType::F64)?;
    let mut opt = Sgd::new(vec![w.clone()], SgdParams { learning_rate: 0.1, ..Default::default() })?;
    step_with(&mut opt, &w, &GRADS[0])?;
    opt.set_learning_rate(0.5);
    assert_eq!(opt.learning_rate(), 0.5);
    let before = values(&w)?;
    step_with(&mut opt, &w, &GRADS[1])?;
    let after = values(&w)?;
    for i in 0..4 {
        assert!((after[i] - (before[i] - 0.5 * GRADS[1][i])).abs() < 1e-12);
    }

    // Adam through AnyOptimizer: η = 0.1 at step 1, 0.05 at steps 2 and 3.
    let (b1, b2, eps) = (0.9, 0.999, 1e-7);
    let w = start_var(DType::F64)?;
    let mut opt = OptimizerConfig::from_name("adam", Some(0.1))
        .map_err(candle_core::Error::from)?
        .build(vec![w.clone()])
        .map_err(candle_core::Error::from)?;
    let mut expected = W0;
    let (mut m, mut v) = ([0.0; 4], [0.0; 4]);
    for (step, g) in GRADS.iter().enumerate() {
        let lr = if step == 0 { 0.1 } else { 0.05 };
        if step == 1 {
            opt.set_learning_rate(0.05);
        }
        step_with(&mut opt, &w, g)?;
        let t = (step + 1) as i32;
        for i in 0..4 {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            expected[i] -= lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t)) * m[i] / (v[i].sqrt() + eps);
        }
        let got = values(&w)?;
        for i in 0..4 {
            assert!((got[i] - expected[i]).abs() < 1e-10, "adam step {} weight {i}", step + 1);
        }
    }
    assert_eq!(opt.learning_rate(), 0.05);
    Ok(())
}

// ---------- state save and restore ----------

/// Configurations whose state (beyond the step counter) is exercised by the round trip.
fn stateful_configs() -> Vec<OptimizerConfig> {
    vec![
        OptimizerConfig::Sgd(SgdParams { learning_rate: 0.1, momentum: 0.7, nesterov: false, weight_decay: 0.0 }),
        OptimizerConfig::Sgd(SgdParams { learning_rate: 0.1, momentum: 0.7, nesterov: true, weight_decay: 0.0 }),
        OptimizerConfig::AdaGrad(AdaGradParams { learning_rate: 0.1, ..Default::default() }),
        OptimizerConfig::RmsProp(RmsPropParams { learning_rate: 0.1, ..Default::default() }),
        OptimizerConfig::RmsProp(RmsPropParams {
            learning_rate: 0.1,
            momentum: 0.5,
            centered: true,
            ..Default::default()
        }),
        OptimizerConfig::Nadam(NadamParams { learning_rate: 0.1, ..Default::default() }),
        OptimizerConfig::AdaDelta(AdaDeltaParams { learning_rate: 1.0, ..Default::default() }),
        OptimizerConfig::Adam(AdamParams { learning_rate: 0.1, ..Default::default() }),
        OptimizerConfig::Adam(AdamParams {
            learning_rate: 0.1,
            beta_2: 0.5,
            amsgrad: true,
            ..Default::default()
        }),
    ]
}

/// A config error as a candle error, so tests can use `?`.
fn build(config: &OptimizerConfig, w: &Var) -> Result<AnyOptimizer> {
    Ok(config.build(vec![w.clone()])?)
}

#[test]
fn saved_state_restores_identical_updates() -> Result<()> {
    // f64 runs the tensor-op path, f32 on the CPU the fused in-place path with host slots.
    for dtype in [DType::F64, DType::F32] {
        saved_state_round_trip(dtype)?;
    }
    Ok(())
}

fn saved_state_round_trip(dtype: DType) -> Result<()> {
    let dir = tempfile::tempdir()?;
    for (k, config) in stateful_configs().iter().enumerate() {
        let name = config.name();
        let path = dir.path().join(format!("state-{k}.safetensors"));
        // Original: two steps, then save.
        let w_a = start_var(dtype)?;
        let mut opt_a = build(config, &w_a)?;
        step_with(&mut opt_a, &w_a, &GRADS[0])?;
        step_with(&mut opt_a, &w_a, &GRADS[1])?;
        opt_a.save_state_file(&path).map_err(candle_core::Error::from)?;

        // Restored: same weights, a new optimizer, the loaded state.
        let w_b = Var::from_tensor(&w_a.as_tensor().copy()?)?;
        let mut opt_b = build(config, &w_b)?;
        opt_b.load_state_file(&path).map_err(candle_core::Error::from)?;
        assert_eq!(opt_b.iterations(), 2, "{name}");

        // Without the state: a fresh optimizer on the same weights.
        let w_c = Var::from_tensor(&w_a.as_tensor().copy()?)?;
        let mut opt_c = build(config, &w_c)?;

        step_with(&mut opt_a, &w_a, &GRADS[2])?;
        step_with(&mut opt_b, &w_b, &GRADS[2])?;
        step_with(&mut opt_c, &w_c, &GRADS[2])?;
        assert_eq!(values(&w_a)?, values(&w_b)?, "{name} #{k}: restored optimizer differs");
        let (a, c) = (values(&w_a)?, values(&w_c)?);
        assert!((0..4).any(|i| (a[i] - c[i]).abs() > 1e-6), "{name} #{k}: state made no difference");
    }
    Ok(())
}

/// Three steps of rule `R` on 40,000 f32 weights (three chunks of the parallel update) with the
/// fused CPU pass and with tensor ops: weights and every slot must agree.
fn fused_matches_tensor_ops<R: UpdateRule>(rule: R) -> Result<()> {
    let n = 40_000;
    let init: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 250.0).collect();
    let (w_fused, w_tensor) = (Var::from_vec(init.clone(), n, &Device::Cpu)?, Var::from_vec(init, n, &Device::Cpu)?);
    let mut fused = SlotOptimizer::new(vec![w_fused.clone()], rule.clone())?;
    let mut tensor = SlotOptimizer::new(vec![w_tensor.clone()], rule)?.with_tensor_ops()?;
    for step in 0..3 {
        let g: Vec<f32> = (0..n).map(|i| (((i * 31 + step * 17) % 97) as f32 - 48.0) / 24.0).collect();
        let g = Tensor::from_vec(g, n, &Device::Cpu)?;
        fused.step(&w_fused.as_tensor().mul(&g)?.sum_all()?.backward()?)?;
        tensor.step(&w_tensor.as_tensor().mul(&g)?.sum_all()?.backward()?)?;
    }
    let max_rel = |a: &Tensor, b: &Tensor| -> Result<f32> {
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        Ok(diff / b.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0))
    };
    let what = R::NAME;
    assert!(max_rel(w_fused.as_tensor(), w_tensor.as_tensor())? < 1e-5, "{what}: weights differ");
    let (sf, st) = (fused.state()?, tensor.state()?);
    assert_eq!(sf.len(), st.len(), "{what}: state entries");
    for ((name, a), (_, b)) in sf.iter().zip(&st) {
        if a.dtype() == DType::F32 {
            assert!(max_rel(a, b)? < 1e-5, "{what}: state {name} differs");
        }
    }
    Ok(())
}

#[test]
fn fused_cpu_update_matches_tensor_ops_for_every_optimizer() -> Result<()> {
    let mut configs = stateful_configs();
    configs.push(OptimizerConfig::Sgd(SgdParams { learning_rate: 0.1, ..Default::default() }));
    for (momentum, nesterov) in [(0.0, false), (0.7, false), (0.7, true)] {
        configs.push(OptimizerConfig::Sgd(SgdParams { learning_rate: 0.1, momentum, nesterov, weight_decay: 0.05 }));
    }
    configs.push(OptimizerConfig::RmsProp(RmsPropParams { learning_rate: 0.1, centered: true, ..Default::default() }));
    configs.push(OptimizerConfig::RmsProp(RmsPropParams { learning_rate: 0.1, momentum: 0.5, ..Default::default() }));
    for config in configs {
        match config {
            OptimizerConfig::Sgd(p) => fused_matches_tensor_ops(p)?,
            OptimizerConfig::AdaGrad(p) => fused_matches_tensor_ops(p)?,
            OptimizerConfig::RmsProp(p) => fused_matches_tensor_ops(p)?,
            OptimizerConfig::Nadam(p) => fused_matches_tensor_ops(p)?,
            OptimizerConfig::AdaDelta(p) => fused_matches_tensor_ops(p)?,
            OptimizerConfig::Adam(p) => fused_matches_tensor_ops(p)?,
        }
    }
    Ok(())
}

#[test]
fn loading_mismatched_state_fails_and_changes_nothing() -> Result<()> {
    let w = start_var(DType::F64)?;
    let mut adam =
        build(&OptimizerConfig::from_name("adam", Some(0.1)).map_err(candle_core::Error::from)?, &w)?;
    step_with(&mut adam, &w, &GRADS[0])?;
    let state: std::collections::HashMap<String, Tensor> = adam.state()?.into_iter().collect();

    // Another kind of optimizer.
    let mut nadam = build(&OptimizerConfig::from_name("nadam", None).map_err(candle_core::Error::from)?, &w)?;
    assert!(nadam.load_state(&state).is_err());
    assert_eq!(nadam.iterations(), 0);

    // Variables of another shape.
    let other = Var::zeros((2, 2), DType::F64, &Device::Cpu)?;
    let mut adam2 =
        build(&OptimizerConfig::from_name("adam", None).map_err(candle_core::Error::from)?, &other)?;
    let err = adam2.load_state(&state).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("shape"), "unexpected error: {err}");
    assert_eq!(adam2.iterations(), 0);

    // A missing file is an I/O error naming the path.
    let missing = std::path::Path::new("/nonexistent/optimizer.safetensors");
    assert!(matches!(adam2.load_state_file(missing), Err(dlkit::Error::Io { .. })));
    Ok(())
}

// ---------- PyTorch weight decay in SGD ----------

/// SGD with PyTorch's weight decay: g ← g + λ·w, then the Keras update of `sgd_reference`.
fn sgd_weight_decay_reference(lr: f64, momentum: f64, nesterov: bool, wd: f64) -> Vec<[f64; 4]> {
    let mut w = W0;
    let mut velocity = [0.0; 4];
    let mut out = Vec::new();
    for g in &GRADS {
        for i in 0..4 {
            let g = g[i] + wd * w[i];
            velocity[i] = momentum * velocity[i] - lr * g;
            w[i] += if nesterov { momentum * velocity[i] - lr * g } else { velocity[i] };
        }
        out.push(w);
    }
    out
}

#[test]
fn sgd_nesterov_weight_decay_matches_hand_arithmetic_and_pytorch() -> Result<()> {
    // λ = 0.01, η = 0.1, μ = 0.9, weight 0 (w₀ = 0.5, gradients 0.3, −0.4, 0.1) by hand:
    // step 1: g' = 0.3 + 0.01·0.5 = 0.305; v = −0.0305; w = 0.5 + 0.9·(−0.0305) − 0.0305 = 0.44205
    // step 2: g' = −0.4 + 0.0044205 = −0.3955795; v = −0.02745 + 0.03955795 = 0.01210795;
    //         w = 0.44205 + 0.010897155 + 0.03955795 = 0.492505105
    // step 3: g' = 0.1 + 0.00492505105 = 0.10492505105; v = 0.010897155 − 0.010492505105 = 0.000404649895;
    //         w = 0.492505105 + 0.0003641849055 − 0.010492505105 = 0.4823767848005
    // torch.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01) on the same
    // weights and gradients (`python3 bench/resnet_d_reference.py`, torch 2.15) prints:
    let torch = [
        [0.44205, -0.8651, 1.7682, -0.009500000000000001],
        [0.492505105, -0.84394631, 1.49502042, 0.27146805],
        [0.4823767848005, -0.692083081011, 1.4809096392019998, 0.00881495570499999],
    ];
    assert!((torch[2][0] - 0.4823767848005f64).abs() < 1e-15, "hand value of weight 0");
    let p = SgdParams { learning_rate: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01 };
    assert_close("sgd nesterov + weight decay, f64 (tensor ops)", &run::<Sgd>(p, DType::F64)?, &torch, TIGHT);
    assert_close("sgd nesterov + weight decay, f32 (fused)", &run::<Sgd>(p, DType::F32)?, &torch, 1e-6);
    assert_close("reference", &sgd_weight_decay_reference(0.1, 0.9, true, 0.01), &torch, 1e-14);
    Ok(())
}

#[test]
fn sgd_weight_decay_without_and_with_plain_momentum_matches_equations() -> Result<()> {
    for (momentum, nesterov) in [(0.0, false), (0.7, false)] {
        let p = SgdParams { learning_rate: 0.1, momentum, nesterov, weight_decay: 0.2 };
        let expected = sgd_weight_decay_reference(0.1, momentum, nesterov, 0.2);
        assert_close(&format!("μ = {momentum}, f64"), &run::<Sgd>(p, DType::F64)?, &expected, TIGHT);
        assert_close(&format!("μ = {momentum}, f32"), &run::<Sgd>(p, DType::F32)?, &expected, 1e-6);
    }
    // λ = 0 is plain Keras SGD.
    let p = SgdParams { learning_rate: 0.1, momentum: 0.7, nesterov: true, weight_decay: 0.0 };
    assert_close("λ = 0", &run::<Sgd>(p, DType::F64)?, &sgd_reference(0.1, 0.7, true), TIGHT);
    Ok(())
}

#[test]
fn sgd_weight_decay_is_checked_and_optional_in_records() -> dlkit::Result<()> {
    for wd in [-0.1, f64::NAN, f64::INFINITY] {
        rejects::<Sgd>(SgdParams { weight_decay: wd, ..Default::default() }, "weight_decay");
    }
    // A record written before weight decay existed reads as λ = 0.
    let old: OptimizerConfig =
        serde_json::from_str(r#"{"optimizer":"sgd","learning_rate":0.1,"momentum":0.9,"nesterov":true}"#)
            .map_err(|e| dlkit::Error::Config(e.to_string()))?;
    assert_eq!(old, OptimizerConfig::Sgd(SgdParams { learning_rate: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.0 }));
    assert!(OptimizerConfig::Sgd(SgdParams { weight_decay: 5e-4, ..Default::default() }).describe().contains("weight_decay = 0.0005"));
    Ok(())
}

// ---------- choosing by name ----------

#[test]
fn from_name_round_trips_and_rejects_unknown_names() -> dlkit::Result<()> {
    for name in OPTIMIZER_NAMES {
        let config = OptimizerConfig::from_name(name, None)?;
        assert_eq!(config.name(), name);
        assert_eq!(OptimizerConfig::from_name(config.name(), None)?, config);
        let json = serde_json::to_string(&config).map_err(|e| dlkit::Error::Config(e.to_string()))?;
        let back: OptimizerConfig =
            serde_json::from_str(&json).map_err(|e| dlkit::Error::Config(e.to_string()))?;
        assert_eq!(back, config, "{json}");
    }
    assert_eq!(OptimizerConfig::from_name("sgd", None)?.learning_rate(), 0.01);
    assert_eq!(OptimizerConfig::from_name("ADAM", Some(0.02))?.learning_rate(), 0.02);
    assert_eq!(
        OptimizerConfig::from_name("sgd-nesterov", None)?,
        OptimizerConfig::Sgd(SgdParams { learning_rate: 0.01, momentum: 0.9, nesterov: true, weight_decay: 0.0 })
    );
    assert_eq!(
        OptimizerConfig::from_name("momentum", Some(0.1))?,
        OptimizerConfig::Sgd(SgdParams { learning_rate: 0.1, momentum: 0.9, nesterov: false, weight_decay: 0.0 })
    );
    assert_eq!(
        OptimizerConfig::from_name("rmsprop", None)?,
        OptimizerConfig::RmsProp(RmsPropParams::default())
    );

    match OptimizerConfig::from_name("adamw", None) {
        Err(dlkit::Error::Config(msg)) => {
            for name in OPTIMIZER_NAMES {
                assert!(msg.contains(name), "`{msg}` does not list {name}");
            }
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    assert!(matches!(OptimizerConfig::from_name("adam", Some(-1.0)), Err(dlkit::Error::Config(_))));

    // A partial JSON record takes Keras defaults for the rest.
    let partial: OptimizerConfig = serde_json::from_str(r#"{"optimizer":"adam","learning_rate":0.01}"#)
        .map_err(|e| dlkit::Error::Config(e.to_string()))?;
    assert_eq!(partial, OptimizerConfig::Adam(AdamParams { learning_rate: 0.01, ..Default::default() }));

    // The built optimizer reports the configuration and its learning rate.
    let w = Var::zeros(3, DType::F32, &Device::Cpu)?;
    let opt = OptimizerConfig::from_name("nadam", Some(0.003))?.build(vec![w])?;
    assert_eq!(opt.learning_rate(), 0.003);
    assert_eq!(opt.config().name(), "nadam");
    Ok(())
}

// ---------- L2 penalty and variable order ----------

#[test]
fn l2_penalty_is_lambda_times_sum_of_squares() -> Result<()> {
    let a = Var::from_tensor(&Tensor::new(&[[1.0f64, 2.0], [3.0, 0.0]], &Device::Cpu)?)?;
    let b = Var::from_tensor(&Tensor::new(&[-1.0f64, 0.5], &Device::Cpu)?)?;
    // 1 + 4 + 9 + 0 + 1 + 0.25 = 15.25
    let penalty = l2_penalty(&[a.as_tensor(), b.as_tensor()], 0.01)?;
    assert!((penalty.to_scalar::<f64>()? - 0.1525).abs() < 1e-15);
    // Its gradient is 2λw.
    let grads = penalty.backward()?;
    let gb = grads.get(&b).map(|g| g.to_vec1::<f64>()).transpose()?.unwrap_or_default();
    assert_eq!(gb.len(), 2);
    assert!((gb[0] + 0.02).abs() < 1e-15 && (gb[1] - 0.01).abs() < 1e-15, "{gb:?}");
    assert!(l2_penalty(&[a.as_tensor()], -0.1).is_err());
    assert!(l2_penalty(&[a.as_tensor()], f64::NAN).is_err());
    assert!(l2_penalty(&[], 0.01).is_err());
    Ok(())
}

#[test]
fn vars_in_name_order_sorts_by_name() -> Result<()> {
    let varmap = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    vb.get_with_hints(3, "b", candle_nn::Init::Const(2.0))?;
    vb.get_with_hints(2, "a", candle_nn::Init::Const(1.0))?;
    vb.get_with_hints(1, "c", candle_nn::Init::Const(3.0))?;
    let dims: Vec<usize> = vars_in_name_order(&varmap).iter().map(|v| v.elem_count()).collect();
    assert_eq!(dims, vec![2, 3, 1]);
    Ok(())
}

#[test]
fn describe_lists_every_hyperparameter_without_the_tag() {
    let d = dlkit::optim::OptimizerConfig::from_name("rmsprop", None).unwrap().describe();
    for part in ["learning_rate = 0.001", "rho = 0.9", "momentum = 0.0", "epsilon = 1e-7", "centered = false"] {
        assert!(d.contains(part), "{part} missing from {d}");
    }
    assert!(!d.contains("optimizer"), "{d}");
}

// ---------- parity with real tf.keras 2.x ----------

/// dlkit's weights after each step for one configuration recorded by
/// `bench/keras_optimizer_parity.py` (the same names and hyperparameters).
fn dlkit_steps(name: &str) -> Result<Vec<[f64; 4]>> {
    let sgd = |momentum, nesterov| SgdParams { learning_rate: 0.1, momentum, nesterov, weight_decay: 0.0 };
    let rmsprop = RmsPropParams { learning_rate: 0.01, ..RmsPropParams::default() };
    let adam = AdamParams { learning_rate: 0.01, ..AdamParams::default() };
    match name {
        "sgd" => run::<Sgd>(sgd(0.0, false), DType::F64),
        "sgd-momentum" => run::<Sgd>(sgd(0.9, false), DType::F64),
        "sgd-nesterov" => run::<Sgd>(sgd(0.9, true), DType::F64),
        "adagrad" => run::<AdaGrad>(AdaGradParams { learning_rate: 0.1, ..AdaGradParams::default() }, DType::F64),
        "rmsprop" => run::<RmsProp>(rmsprop, DType::F64),
        "rmsprop-momentum-centered" => run::<RmsProp>(RmsPropParams { momentum: 0.9, centered: true, ..rmsprop }, DType::F64),
        "adam" => run::<Adam>(adam, DType::F64),
        "adam-amsgrad" => run::<Adam>(AdamParams { amsgrad: true, ..adam }, DType::F64),
        "nadam" => run::<Nadam>(NadamParams { learning_rate: 0.01, ..NadamParams::default() }, DType::F64),
        "adadelta" => run::<AdaDelta>(AdaDeltaParams { learning_rate: 1.0, ..AdaDeltaParams::default() }, DType::F64),
        other => panic!("keras_optimizer_steps.json names an unknown configuration {other:?}"),
    }
}

/// Every optimizer against the weights real tf_keras (optimizers.legacy, float64) produced from
/// the same start and gradients; the recording is `tests/data/keras_optimizer_steps.json`, made
/// by `bench/keras_optimizer_parity.py`. Run with `--nocapture` for the table of differences.
///
/// Tolerance 1e-7 relative: Keras keeps the hyperparameters (learning rate, ρ, β) in float32
/// variables even for float64 weights (0.1 is 0.100000001490116), which moves its steps by
/// ~1e-8 relative; a different rule (e.g. ε inside instead of outside the square root, or Keras
/// 3's RMSprop) moves them by 1e-6 or more.
#[test]
fn keras_recorded_steps_match() -> Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/keras_optimizer_steps.json");
    let text = std::fs::read_to_string(path).expect("the Keras recording is in the repository");
    let record: serde_json::Value = serde_json::from_str(&text).expect("the Keras recording is JSON");
    assert_eq!(record["w0"], serde_json::json!(W0), "the recording starts where these tests do");
    assert_eq!(record["grads"], serde_json::json!(GRADS), "the recording uses these tests' gradients");
    let runs = record["runs"].as_object().expect("runs: an object");
    assert_eq!(runs.len(), 10, "every configuration recorded");
    println!("dlkit vs tf_keras {} (TensorFlow {}), 3 steps, float64:", record["tf_keras"], record["tensorflow"]);
    for (name, run) in runs {
        let keras: Vec<[f64; 4]> = serde_json::from_value(run["steps"].clone()).expect("steps: 3 × 4 numbers");
        let ours = dlkit_steps(name)?;
        let worst = ours.iter().flatten().zip(keras.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        println!("  {name:<26} max |dlkit − keras| = {worst:.2e}");
        assert_close(&format!("{name} vs tf_keras"), &ours, &keras, 1e-7);
    }
    Ok(())
}
