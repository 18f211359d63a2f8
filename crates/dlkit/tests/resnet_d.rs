//! ResNet-50-D with squeeze-and-excitation: parameter counts against an independent PyTorch
//! model and by hand, the summary against the built `VarMap`, shapes, initialisation, PyTorch's
//! batch norm, configuration checks, and a few training steps.

use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use dlkit::experiment::ModelChoice;
use dlkit::models::layers::{conv2d_no_bias, pytorch_batch_norm, KernelInit, Padding};
use dlkit::models::{ResNetD, ResNetDConfig};
use dlkit::optim::{Sgd, SgdParams};
use dlkit::summary;

/// Trainable and non-trainable values of a built model's `VarMap`.
fn varmap_counts(config: ResNetDConfig) -> (u64, u64) {
    let varmap = VarMap::new();
    ModelChoice::ResNetD(config).build(&varmap, 0, &Device::Cpu).unwrap();
    let data = varmap.data().lock().unwrap();
    let running: u64 = data
        .iter()
        .filter(|(k, _)| k.ends_with("running_mean") || k.ends_with("running_var"))
        .map(|(_, v)| v.elem_count() as u64)
        .sum();
    let total: u64 = data.values().map(|v| v.elem_count() as u64).sum();
    (total - running, running)
}

#[test]
fn parameter_counts_match_an_independent_pytorch_model() {
    // `python3 bench/resnet_d_reference.py` (torch 2.15 CPU) builds the same network from the
    // papers in PyTorch and counts `parameters()` and the BN running mean/var buffers:
    //   stem  64 r  4: (33626410, 53248)    stem  64 r 16: (26078746, 53248)
    //   stem 128 r  4: (33730954, 53504)    stem 128 r 16: (26183290, 53504)
    // By hand for stem 64, r 16: timm's resnet50d has 25,576,264 parameters with a 1000-way
    // classifier (2048·1000 + 1000); with 10 classes (2048·10 + 10) that is 23,547,754. SE adds
    // 2·C·C/16 + C/16 + C per block: 8,464 (C = 256) × 3 + 33,312 (512) × 4 + 132,160 (1024) × 6
    // + 526,464 (2048) × 3 = 2,530,992, total 26,078,746. BN statistics: 2 × the 26,624 BN
    // channels = 53,248; stem 128 adds 32 + 32 + 64 BN channels (×2 = 256).
    for (stem, r, trainable, running) in [
        (64, 4, 33_626_410, 53_248),
        (64, 16, 26_078_746, 53_248),
        (128, 4, 33_730_954, 53_504),
        (128, 16, 26_183_290, 53_504),
    ] {
        let s = summary::resnet50d_se(stem, r).unwrap().summary().unwrap();
        assert_eq!(s.trainable_params(), trainable, "stem {stem}, r {r}: trainable");
        assert_eq!(s.non_trainable_params(), running, "stem {stem}, r {r}: running statistics");
        assert_eq!(s.output, summary::Shape::vector(10));
    }
    // The reduced quick-mode model: the same script prints (555678, 4864).
    let s = summary::resnet_d_se(&ResNetDConfig::default().reduced()).unwrap().summary().unwrap();
    assert_eq!((s.trainable_params(), s.non_trainable_params()), (555_678, 4_864));
    // `dlkit summary resnet50d-se` is stem 64, r 16.
    assert_eq!(summary::by_name("resnet50d-se").unwrap().trainable_params(), 26_078_746);
    assert!(summary::MODEL_NAMES.contains(&"resnet50d-se"));
}

#[test]
fn summary_matches_the_built_varmap() {
    let reduced = ResNetDConfig::default().reduced();
    let configs = [
        ResNetDConfig::default(),
        reduced,
        ResNetDConfig { stem_width: 128, se_reduction: 4, ..reduced },
        ResNetDConfig { blocks_per_stage: [2, 1, 3, 1], width_divisor: 8, input_channels: 1, classes: 7, ..reduced },
    ];
    for config in configs {
        let s = summary::resnet_d_se(&config).unwrap().summary().unwrap();
        assert_eq!(varmap_counts(config), (s.trainable_params(), s.non_trainable_params()), "{config:?}");
    }
}

#[test]
fn stages_run_at_32_16_8_4_pixels() {
    let s = summary::resnet50d_se(64, 16).unwrap().summary().unwrap();
    let shape = |row: &str| s.row(row).unwrap_or_else(|| panic!("no row {row}")).output;
    assert_eq!(shape("stem.conv3.bn"), summary::Shape::image(64, 32, 32));
    assert_eq!(shape("stage1.block2.relu"), summary::Shape::image(256, 32, 32));
    assert_eq!(shape("stage2.block0.shortcut.pool"), summary::Shape::image(256, 16, 16));
    assert_eq!(shape("stage2.block3.relu"), summary::Shape::image(512, 16, 16));
    assert_eq!(shape("stage3.block5.se.reduce"), summary::Shape::vector(64));
    assert_eq!(shape("stage4.block2.relu"), summary::Shape::image(2048, 4, 4));
    // Stage 1 widens the shortcut without pooling; blocks 1+ have identity shortcuts.
    assert!(s.row("stage1.block0.shortcut.conv").is_some() && s.row("stage1.block0.shortcut.pool").is_none());
    assert!(s.row("stage2.block1.shortcut.conv").is_none());
}

#[test]
fn forward_gives_logits_in_both_modes() -> candle_core::Result<()> {
    let varmap = VarMap::new();
    let config = ResNetDConfig { dropout: 0.5, ..ResNetDConfig::default().reduced() };
    let model = ResNetD::new(dlkit::models::init::seeded(&varmap, 1, DType::F32, &Device::Cpu), config)?;
    let x = Tensor::randn(0f32, 1.0, (3, 3, 32, 32), &Device::Cpu)?;
    assert_eq!(model.forward_t(&x, true)?.dims(), [3, 10]);
    let a = model.forward(&x)?;
    assert_eq!(a.dims(), [3, 10]);
    // Evaluation has no dropout: the same input gives the same logits.
    let b = model.forward(&x)?;
    assert_eq!(a.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
    Ok(())
}

#[test]
fn initialisation_is_pytorch_resnet_init() -> candle_core::Result<()> {
    let varmap = VarMap::new();
    ResNetD::new(dlkit::models::init::seeded(&varmap, 3, DType::F32, &Device::Cpu), ResNetDConfig::default().reduced())?;
    let data = varmap.data().lock().unwrap();
    let values = |name: &str| data[name].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // He normal over the fan-out: stage 4's 3×3 kernel is 128 × 128 × 3 × 3, fan-out 128·9,
    // std √(2 / 1152) = 0.041667; 147,456 draws estimate it within ~0.4 %.
    let w = values("stage4.block0.conv3x3.conv.weight");
    let mean = w.iter().sum::<f32>() / w.len() as f32;
    let std = (w.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / w.len() as f32).sqrt();
    assert!((std / (2.0f32 / 1152.0).sqrt() - 1.0).abs() < 0.02, "std {std}");
    assert!(mean.abs() < 0.001, "mean {mean}");
    // The classifier keeps PyTorch's Linear default: uniform in ±1/√512.
    let bound = 1.0 / 512f32.sqrt();
    let c = values("classifier.weight");
    assert!(c.iter().all(|v| v.abs() <= bound) && c.iter().any(|v| v.abs() > 0.9 * bound));
    // Batch norm starts at γ = 1, β = 0, mean 0, variance 1.
    assert!(values("stage4.block0.expand.bn.weight").iter().all(|&v| v == 1.0));
    assert!(values("stage4.block0.expand.bn.bias").iter().all(|&v| v == 0.0));
    assert!(values("stage4.block0.expand.bn.running_var").iter().all(|&v| v == 1.0));
    Ok(())
}

#[test]
fn pytorch_batch_norm_uses_momentum_0_1_and_epsilon_1e_5() -> candle_core::Result<()> {
    let varmap = VarMap::new();
    let bn = pytorch_batch_norm(1, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    let x = Tensor::new(&[1f32, 2.0, 3.0, 4.0], &Device::Cpu)?.reshape((1, 1, 2, 2))?;
    let y = bn.forward_t(&x, true)?.flatten_all()?.to_vec1::<f32>()?;
    // Batch mean 2.5, biased variance 1.25: y = (x − 2.5) / √(1.25 + 1e-5).
    for (a, v) in y.iter().zip([1f32, 2.0, 3.0, 4.0]) {
        assert!((a - (v - 2.5) / (1.25f32 + 1e-5).sqrt()).abs() < 1e-6, "{y:?}");
    }
    // Running statistics move 10 % of the way: mean 0.9·0 + 0.1·2.5 = 0.25, variance
    // 0.9·1 + 0.1·(5/3) (unbiased: squared deviations 5 over 3) = 1.0666667.
    let data = varmap.data().lock().unwrap();
    assert!((data["running_mean"].as_tensor().to_vec1::<f32>()?[0] - 0.25).abs() < 1e-6);
    assert!((data["running_var"].as_tensor().to_vec1::<f32>()?[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-6);
    Ok(())
}

#[test]
fn conv2d_no_bias_has_only_a_kernel() -> candle_core::Result<()> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let conv = conv2d_no_bias(2, 3, 3, 2, Padding::Same, KernelInit::HeNormalFanOut, vb)?;
    assert_eq!(varmap.all_vars().len(), 1, "only the kernel is a variable");
    let x = Tensor::randn(0f32, 1.0, (2, 2, 8, 8), &Device::Cpu)?;
    let w = varmap.all_vars()[0].as_tensor().clone();
    // PyTorch's conv2d(padding=1, stride=2, bias=False) is candle's conv2d without a bias.
    let expected = x.conv2d(&w, 1, 2, 1, 1)?;
    let diff = (conv.forward(&x)? - &expected)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(diff < 1e-5 && expected.dims() == [2, 3, 4, 4], "diff {diff}");
    Ok(())
}

#[test]
fn bad_configurations_name_the_field() {
    let reduced = ResNetDConfig::default().reduced();
    for (config, field) in [
        (ResNetDConfig { stem_width: 6, ..reduced }, "stem_width"),
        (ResNetDConfig { se_reduction: 0, ..reduced }, "se_reduction"),
        (ResNetDConfig { dropout: 1.0, ..reduced }, "dropout"),
        (ResNetDConfig { classes: 0, ..reduced }, "classes"),
        (ResNetDConfig { blocks_per_stage: [1, 0, 1, 1], ..reduced }, "blocks_per_stage"),
        (ResNetDConfig { width_divisor: 0, ..reduced }, "width_divisor"),
    ] {
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains(field), "`{message}` does not name {field}");
        assert!(ModelChoice::ResNetD(config).build(&VarMap::new(), 0, &Device::Cpu).is_err());
    }
}

#[test]
fn config_round_trips_and_old_records_get_the_full_depth() {
    let config = ResNetDConfig { stem_width: 128, ..ResNetDConfig::default().reduced() };
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(serde_json::from_str::<ResNetDConfig>(&json).unwrap(), config);
    let minimal = r#"{"stem_width":64,"se_reduction":4,"dropout":0.2,"classes":10,"input_channels":3}"#;
    let parsed: ResNetDConfig = serde_json::from_str(minimal).unwrap();
    assert_eq!((parsed.blocks_per_stage, parsed.width_divisor), ([3, 4, 6, 3], 1));
    assert_eq!(
        ModelChoice::from_name("resnet50d-se", 3).unwrap(),
        ModelChoice::ResNetD(ResNetDConfig::default())
    );
}

#[test]
fn a_few_sgd_steps_lower_the_loss_on_a_fixed_batch() -> candle_core::Result<()> {
    let varmap = VarMap::new();
    let config = ResNetDConfig { dropout: 0.0, ..ResNetDConfig::default().reduced() };
    let model = ResNetD::new(dlkit::models::init::seeded(&varmap, 0, DType::F32, &Device::Cpu), config)?;
    let params = SgdParams { learning_rate: 0.05, momentum: 0.9, nesterov: true, weight_decay: 5e-4 };
    let mut sgd = Sgd::new(dlkit::optim::vars_in_name_order(&varmap), params)?;
    let x = Tensor::randn(0f32, 1.0, (8, 3, 32, 32), &Device::Cpu)?;
    let y = Tensor::new(&[0u32, 1, 2, 3, 4, 5, 6, 7], &Device::Cpu)?;
    let loss = |train| candle_nn::loss::cross_entropy(&model.forward_t(&x, train)?, &y);
    let first = loss(true)?.to_scalar::<f32>()?;
    for _ in 0..8 {
        sgd.backward_step(&loss(true)?)?;
    }
    let last = loss(true)?.to_scalar::<f32>()?;
    assert!(last < 0.7 * first, "loss {first} → {last}");
    Ok(())
}
