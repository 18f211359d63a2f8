//! The Residual Attention Network of section 06: shapes, parameter counts worked out by hand,
//! the summary spec against the built `VarMap`, the soft masks, the variant switches, the L2
//! penalty and a training step.
//!
//! Counting conventions (Keras's): a k×k convolution from `i` to `o` channels has i·k²·o + o
//! parameters; batch norm on `c` channels has 2c trainable (γ, β) and 2c non-trainable (moving
//! mean and variance) parameters.

use candle_core::{DType, Device, ModuleT, Result, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use dlkit::experiment::ModelChoice;
use dlkit::models::init::seeded;
use dlkit::models::{AttentionModule, AttentionResNet, AttentionResNetConfig, Network, ResidualUnit, Shortcut};
use dlkit::summary;
use rand::{Rng, SeedableRng};

/// Builds on a fresh CPU `VarMap` with weights drawn from seed 0.
fn build<M>(make: impl FnOnce(VarBuilder) -> Result<M>) -> Result<(VarMap, M)> {
    let varmap = VarMap::new();
    let model = make(seeded(&varmap, 0, DType::F32, &Device::Cpu))?;
    Ok((varmap, model))
}

/// (trainable, non-trainable) values in a `VarMap`; non-trainable = batch-norm running statistics.
fn counts(varmap: &VarMap) -> (u64, u64) {
    let data = varmap.data().lock().unwrap();
    let total: u64 = data.values().map(|v| v.elem_count() as u64).sum();
    let running: u64 = data
        .iter()
        .filter(|(name, _)| name.ends_with("running_mean") || name.ends_with("running_var"))
        .map(|(_, v)| v.elem_count() as u64)
        .sum();
    (total - running, running)
}

/// Seeded uniform values in [-1, 1) of the given shape.
fn uniform(shape: (usize, usize, usize, usize), seed: u64) -> Result<Tensor> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(values, shape, &Device::Cpu)
}

/// Parameters of a k×k convolution with bias.
fn conv(inputs: u64, k: u64, outputs: u64) -> u64 {
    inputs * k * k * outputs + outputs
}

#[test]
fn residual_unit_shapes_and_counts_with_identity_and_projection() -> Result<()> {
    // Shape kept, identity shortcut: 128 → bottleneck 32 → 128.
    let (varmap, unit) = build(|vb| ResidualUnit::new(128, 32, 128, 1, Shortcut::IdentityWhereShapeKept, vb))?;
    assert!(!unit.has_projection());
    let y = unit.forward_t(&uniform((2, 128, 8, 8), 1)?, true)?;
    assert_eq!(y.dims(), [2, 128, 8, 8]);
    // BN(128) 256 + conv 1×1 128→32 4,128 + BN(32) 64 + conv 3×3 32→32 9,248 + BN(32) 64
    // + conv 1×1 32→128 4,224 = 17,984 trainable; running statistics 2·128 + 2·32 + 2·32 = 384.
    assert_eq!(256 + conv(128, 1, 32) + 64 + conv(32, 3, 32) + 64 + conv(32, 1, 128), 17_984);
    assert_eq!(counts(&varmap), (17_984, 384));

    // Stride 2 and 128 → 256 channels: a 1×1 stride-2 projection (128·256 + 256 = 33,024).
    // BN(128) 256 + conv 128→64 8,256 + BN(64) 128 + conv 3×3 64→64 36,928 + BN(64) 128
    // + conv 64→256 16,640 + projection 33,024 = 95,360; running 256 + 128 + 128 = 512.
    let (varmap, unit) = build(|vb| ResidualUnit::new(128, 64, 256, 2, Shortcut::IdentityWhereShapeKept, vb))?;
    assert!(unit.has_projection());
    assert_eq!(unit.forward_t(&uniform((2, 128, 16, 16), 2)?, true)?.dims(), [2, 256, 8, 8]);
    assert_eq!(counts(&varmap), (95_360, 512));

    // The report's rule projects a shape-keeping unit too: +128·128 + 128 = 16,512.
    let (varmap, unit) = build(|vb| ResidualUnit::keeping(128, Shortcut::AlwaysProject, vb))?;
    assert!(unit.has_projection());
    assert_eq!(counts(&varmap), (17_984 + 16_512, 384));
    // At 256 channels that projection is the report's 1×1 convolution of 256·256 + 256 = 65,792.
    let (varmap, _) = build(|vb| ResidualUnit::keeping(256, Shortcut::AlwaysProject, vb))?;
    let data = varmap.data().lock().unwrap();
    let projection: usize = ["projection.weight", "projection.bias"].iter().map(|n| data[*n].elem_count()).sum();
    assert_eq!(projection, 65_792);
    Ok(())
}

#[test]
fn identity_unit_passes_its_input_through_when_the_branch_is_zero() -> Result<()> {
    // With the last 1×1 convolution zeroed the branch adds nothing: y = x exactly.
    let (varmap, unit) = build(|vb| ResidualUnit::keeping(8, Shortcut::IdentityWhereShapeKept, vb))?;
    for name in ["conv3.weight", "conv3.bias"] {
        let data = varmap.data().lock().unwrap();
        data[name].set(&data[name].as_tensor().zeros_like()?)?;
    }
    let x = uniform((2, 8, 4, 4), 3)?;
    let y = unit.forward_t(&x, true)?;
    assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, x.flatten_all()?.to_vec1::<f32>()?);
    Ok(())
}

#[test]
fn attention_module_keeps_the_shape_for_both_skip_values() -> Result<()> {
    for skip in [1, 2] {
        let (_, module) = build(|vb| AttentionModule::new(16, skip, Shortcut::AlwaysProject, vb))?;
        let x = uniform((2, 16, 16, 16), skip as u64)?;
        let (y, mask) = module.forward_with_mask(&x, true)?;
        assert_eq!(y.dims(), [2, 16, 16, 16], "skip {skip}");
        assert_eq!(mask.dims(), [2, 16, 16, 16], "skip {skip}");
        let m = mask.flatten_all()?.to_vec1::<f32>()?;
        assert!(m.iter().all(|v| (0.0..=1.0).contains(v)), "skip {skip}: mask outside [0, 1]");
        assert!(m.iter().any(|v| (*v - m[0]).abs() > 1e-4), "skip {skip}: constant mask");
    }
    // skip 3 halves 16 three times: fine; on 4×4 it cannot, and says so.
    let (_, module) = build(|vb| AttentionModule::new(16, 3, Shortcut::AlwaysProject, vb))?;
    let err = module.forward_t(&uniform((1, 16, 4, 4), 0)?, false).unwrap_err().to_string();
    assert!(err.contains("skip 3") && err.contains("multiple of 8"), "{err}");
    assert!(build(|vb| AttentionModule::new(16, 0, Shortcut::AlwaysProject, vb)).is_err());
    Ok(())
}

#[test]
fn attention_module_parameter_counts_by_hand() -> Result<()> {
    // A shape-keeping unit on 256 channels (bottleneck 64, projected as in the report):
    // BN 512 + conv 256→64 16,448 + BN 128 + conv 3×3 64→64 36,928 + BN 128 + conv 64→256 16,640
    // + projection 65,792 = 136,576 trainable; running statistics 512 + 128 + 128 = 768.
    let unit = 512 + conv(256, 1, 64) + 128 + conv(64, 3, 64) + 128 + conv(64, 1, 256) + conv(256, 1, 256);
    assert_eq!(unit, 136_576);
    // skip 1: pre, trunk ×2, mask (down, up), post = 6 units, plus the mask's two 1×1
    // convolutions 256→256 (2 × 65,792): 6 × 136,576 + 131,584 = 951,040; running 6 × 768.
    let (varmap, _) = build(|vb| AttentionModule::new(256, 1, Shortcut::AlwaysProject, vb))?;
    assert_eq!(6 * unit + 2 * conv(256, 1, 256), 951_040);
    assert_eq!(counts(&varmap), (951_040, 4_608));
    // skip 2 adds one inner level: skip connection, down, up = 3 more units.
    let (varmap, _) = build(|vb| AttentionModule::new(256, 2, Shortcut::AlwaysProject, vb))?;
    assert_eq!(counts(&varmap), (951_040 + 3 * 136_576, 4_608 + 3 * 768));
    // The paper's identity shortcuts drop every unit's projection: 6 × 65,792 fewer.
    let (varmap, _) = build(|vb| AttentionModule::new(256, 1, Shortcut::IdentityWhereShapeKept, vb))?;
    assert_eq!(counts(&varmap), (951_040 - 6 * 65_792, 4_608));
    Ok(())
}

/// AttentionResNet56-mini at full width, worked out block by block:
/// - stem: conv 5×5 3→32: 2,432; BN(32): 64 + 64 running;
/// - unit 32 → 128: BN 64 + conv 32→32 1,056 + BN 64 + conv 3×3 9,248 + BN 64 + conv 32→128 4,224
///   + projection 32→128 4,224 = 18,944; running 64 + 64 + 64 = 192;
/// - attention on 128 (skip 1): 6 units of 34,496 (BN 256 + 4,128 + 64 + 9,248 + 64 + 4,224
///   + projection 16,512) + 2 × 16,512 = 240,000; running 6 × 384 = 2,304;
/// - unit 64 → 256 stride 2: 95,360; running 512;
/// - attention on 256 (skip 1): 951,040; running 4,608;
/// - unit 128 → 512 stride 2: BN 512 + conv 256→128 32,896 + BN 256 + conv 3×3 147,584 + BN 256
///   + conv 128→512 66,048 + projection 256→512 131,584 = 379,136; running 512 + 256 + 256 = 1,024;
/// - two units 128 → 512: 2 × (BN 1,024 + 65,664 + 256 + 147,584 + 256 + 66,048
///   + projection 262,656) = 2 × 543,488; running 2 × 1,536;
/// - dense 512 → 10: 5,130.
const MINI: (u64, u64) = (
    2_432 + 64 + 18_944 + 240_000 + 95_360 + 951_040 + 379_136 + 2 * 543_488 + 5_130,
    64 + 192 + 2_304 + 512 + 4_608 + 1_024 + 2 * 1_536,
);

#[test]
fn mini_parameter_counts_by_hand_match_the_varmap_and_the_summary() -> Result<()> {
    assert_eq!(MINI, (2_779_082, 11_776));
    let (varmap, _) = build(|vb| AttentionResNet::new(vb, AttentionResNetConfig::mini()))?;
    assert_eq!(counts(&varmap), MINI);
    let s = summary::by_name("attention56-mini").unwrap();
    assert_eq!((s.trainable_params(), s.non_trainable_params()), MINI);
    // The report's 1×1 convolutions of 65,792 parameters at 4×4×256: inside the stage-2 mask.
    let row = s.row("block3.mask.down.projection").unwrap();
    assert_eq!((row.trainable, row.output), (65_792, summary::Shape::image(256, 4, 4)));
    assert_eq!(s.row("block3.mask.conv2").unwrap().output, summary::Shape::image(256, 8, 8));
    assert_eq!(s.output, summary::Shape::vector(10));
    Ok(())
}

#[test]
fn summary_specs_match_the_built_varmap_for_every_variant() {
    let variants = [
        AttentionResNetConfig::mini(),
        AttentionResNetConfig::paper(),
        AttentionResNetConfig::mini().regularised(0.3, 0.01),
        AttentionResNetConfig::paper().regularised(0.0, 0.0),
        AttentionResNetConfig::mini().narrow(4),
        AttentionResNetConfig::paper().narrow(8),
        AttentionResNetConfig { shortcut: Shortcut::IdentityWhereShapeKept, ..AttentionResNetConfig::paper() },
        AttentionResNetConfig { input_channels: 1, classes: 7, ..AttentionResNetConfig::mini().narrow(2) },
    ];
    for config in variants {
        let s = summary::attention56(&config).unwrap().summary().unwrap();
        let varmap = VarMap::new();
        ModelChoice::AttentionResNet(config).build(&varmap, 0, &Device::Cpu).unwrap();
        assert_eq!((s.trainable_params(), s.non_trainable_params()), counts(&varmap), "{config:?}");
    }
}

#[test]
fn variant_switches_change_the_counts_as_expected() -> Result<()> {
    let count = |config| -> Result<(u64, u64)> { Ok(counts(&build(|vb| AttentionResNet::new(vb, config))?.0)) };
    let mini = count(AttentionResNetConfig::mini())?;
    // Regularised: one BN(512) before the pool (1,024 + 1,024); dropout and L2 add nothing.
    assert_eq!(count(AttentionResNetConfig::mini().regularised(0.5, 0.01))?, (mini.0 + 1_024, mini.1 + 1_024));
    assert_eq!(count(AttentionResNetConfig { dropout: 0.5, l2: 0.1, ..AttentionResNetConfig::mini() })?, mini);
    // Paper: no stem BN (−64, −64); stage-1 attention with skip 2 (+3 units of 34,496 and 384);
    // a second stage-2 attention module (+951,040 and 4,608).
    let paper = count(AttentionResNetConfig::paper())?;
    assert_eq!(paper, (mini.0 - 64 + 3 * 34_496 + 951_040, mini.1 - 64 + 3 * 384 + 4_608));
    assert_eq!(paper, (3_833_546, 17_472));
    // Width ÷2: every convolution of i → o channels shrinks to i/2 → o/2 (weights ÷4), so the
    // total is between a quarter and a half of the full one; the stem keeps its 3 input channels.
    let half = count(AttentionResNetConfig::mini().narrow(2))?;
    assert_eq!(half.1, mini.1 / 2); // batch norm counts are linear in the channels
    assert!(4 * half.0 > mini.0 && 2 * half.0 < mini.0, "{half:?} vs {mini:?}");
    // Identity shortcuts: the 14 shape-keeping units lose their projections: 6 units on 128
    // channels (16,512 each) in module 1, 6 on 256 (65,792) in module 2, 2 on 512 (262,656) at
    // the end; the three units that change channels keep theirs.
    let identity = count(AttentionResNetConfig { shortcut: Shortcut::IdentityWhereShapeKept, ..AttentionResNetConfig::mini() })?;
    assert_eq!(identity, (mini.0 - 6 * 16_512 - 6 * 65_792 - 2 * 262_656, mini.1));
    Ok(())
}

#[test]
fn whole_model_shapes_and_soft_masks() -> Result<()> {
    let x = uniform((3, 3, 32, 32), 7)?;
    for (config, mask_shapes) in [
        (AttentionResNetConfig::mini().narrow(8), vec![[3, 16, 16, 16], [3, 32, 8, 8]]),
        (AttentionResNetConfig::paper().narrow(8), vec![[3, 16, 16, 16], [3, 32, 8, 8], [3, 32, 8, 8]]),
    ] {
        let (_, net) = build(|vb| AttentionResNet::new(vb, config))?;
        assert_eq!(net.forward_t(&x, true)?.dims(), [3, 10]);
        assert_eq!(net.forward(&x)?.dims(), [3, 10]);
        let masks = net.soft_masks(&x)?;
        let shapes: Vec<[usize; 4]> = masks.iter().map(|m| m.dims().try_into().unwrap()).collect();
        assert_eq!(shapes, mask_shapes, "{:?}", config.variant);
        for m in &masks {
            let (lo, hi) = (m.min_all()?.to_scalar::<f32>()?, m.max_all()?.to_scalar::<f32>()?);
            assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && lo < hi, "mask range [{lo}, {hi}]");
        }
    }
    // Only 32×32 images: the 4×4 average pool must be global.
    let (_, net) = build(|vb| AttentionResNet::new(vb, AttentionResNetConfig::mini().narrow(8)))?;
    let err = net.forward(&uniform((1, 3, 28, 28), 0)?).unwrap_err().to_string();
    assert!(err.contains("32×32"), "{err}");
    Ok(())
}

#[test]
fn configuration_errors_name_the_field() {
    let bad = [
        (AttentionResNetConfig::mini().narrow(3), "width_divisor"),
        (AttentionResNetConfig::mini().narrow(0), "width_divisor"),
        (AttentionResNetConfig { dropout: 1.0, ..AttentionResNetConfig::mini() }, "dropout"),
        (AttentionResNetConfig { l2: -1.0, ..AttentionResNetConfig::mini() }, "l2"),
        (AttentionResNetConfig { classes: 0, ..AttentionResNetConfig::mini() }, "classes"),
    ];
    for (config, field) in bad {
        let err = config.check().unwrap_err().to_string();
        assert!(err.contains(field), "{field}: {err}");
        assert!(build(|vb| AttentionResNet::new(vb, config)).is_err());
        assert!(summary::attention56(&config).is_err());
    }
}

#[test]
fn l2_penalty_is_lambda_times_the_squared_dense_kernel() -> Result<()> {
    let config = AttentionResNetConfig::mini().narrow(8).regularised(0.2, 0.01);
    let (varmap, net) = build(|vb| AttentionResNet::new(vb, config))?;
    let kernel = varmap.data().lock().unwrap()["classifier.weight"].as_tensor().clone();
    let by_hand: f32 = 0.01 * kernel.flatten_all()?.to_vec1::<f32>()?.iter().map(|w| w * w).sum::<f32>();
    let penalty = net.penalty()?.expect("λ > 0 gives a penalty").to_scalar::<f32>()?;
    assert!((penalty - by_hand).abs() < 1e-6 * by_hand.max(1.0), "{penalty} vs {by_hand}");
    let (_, plain) = build(|vb| AttentionResNet::new(vb, AttentionResNetConfig::mini().narrow(8)))?;
    assert!(plain.penalty()?.is_none());
    Ok(())
}

#[test]
fn one_training_step_lowers_the_loss_on_a_tiny_batch() -> Result<()> {
    let config = AttentionResNetConfig::paper().narrow(8).regularised(0.0, 0.01);
    let (varmap, net) = build(|vb| AttentionResNet::new(vb, config))?;
    let x = uniform((8, 3, 32, 32), 11)?;
    let y = Tensor::new(&[0u32, 1, 2, 3, 4, 5, 6, 7], &Device::Cpu)?;
    let loss = |net: &AttentionResNet| -> Result<Tensor> {
        let data = candle_nn::loss::cross_entropy(&net.forward_t(&x, true)?, &y)?;
        data + net.penalty()?.expect("λ > 0")
    };
    let before = loss(&net)?;
    let mut sgd = candle_nn::SGD::new(varmap.all_vars(), 0.05)?;
    sgd.backward_step(&before)?;
    let (before, after) = (before.to_scalar::<f32>()?, loss(&net)?.to_scalar::<f32>()?);
    assert!(after < before, "loss {before} → {after}");
    Ok(())
}
