//! Model summaries against figures worked out by hand (per-layer arithmetic written out here).

use dlkit::summary::{
    self, alexnet, by_name, inception_cost, minigooglenet, mlp, receptive_field, resnet_v1, vgg19, vgg19_without_biases, vgg_cnn, Conv2d,
    Dense, Layer, ModelSpec, Sequential, Shape,
};

/// Weights + biases of a k×k convolution from `cin` to `cout` channels in `groups` groups.
fn conv(k: u64, cin: u64, cout: u64, groups: u64) -> u64 {
    k * k * (cin / groups) * cout + cout
}

/// Weights + biases of a dense layer.
fn dense(cin: u64, cout: u64) -> u64 {
    cin * cout + cout
}

fn params(s: &summary::ModelSummary, row: &str) -> u64 {
    s.row(row).unwrap_or_else(|| panic!("no row {row}")).params()
}

#[test]
fn alexnet_per_layer_and_total() {
    let s = alexnet().summary().unwrap();
    let expected = [
        ("conv1", conv(11, 3, 96, 1), 34_944),
        ("conv2", conv(5, 96, 256, 2), 307_456),
        ("conv3", conv(3, 256, 384, 1), 885_120),
        ("conv4", conv(3, 384, 384, 2), 663_936),
        ("conv5", conv(3, 384, 256, 2), 442_624),
        ("fc6", dense(6 * 6 * 256, 4096), 37_752_832),
        ("fc7", dense(4096, 4096), 16_781_312),
        ("fc8", dense(4096, 1000), 4_097_000),
    ];
    for (name, by_hand, published) in expected {
        assert_eq!(by_hand, published, "{name}: hand arithmetic");
        assert_eq!(params(&s, name), published, "{name}");
    }
    assert_eq!(s.total_params(), 60_965_224);
    assert_eq!(s.non_trainable_params(), 0);
    // The classic sizes 55 → 27 → 13 → 13 → 13 → 6.
    let side = |n: &str| s.row(n).unwrap().output.dims()[1];
    let sides: Vec<usize> = ["conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5"].map(side).into();
    assert_eq!(sides, vec![55, 27, 27, 13, 13, 13, 13, 6]);
    assert_eq!(s.output, Shape::vector(1000));
    // conv1 MACs: 55·55 positions × 96 filters × 11·11·3 weights each.
    assert_eq!(s.row("conv1").unwrap().macs, 55 * 55 * 96 * 11 * 11 * 3);
}

#[test]
fn vgg19_parameters_and_activations() {
    let s = vgg19().summary().unwrap();
    // (input channels, output channels) of the 16 convolutions.
    let convs: [(u64, u64); 16] = [
        (3, 64),
        (64, 64),
        (64, 128),
        (128, 128),
        (128, 256),
        (256, 256),
        (256, 256),
        (256, 256),
        (256, 512),
        (512, 512),
        (512, 512),
        (512, 512),
        (512, 512),
        (512, 512),
        (512, 512),
        (512, 512),
    ];
    let conv_weights: u64 = convs.iter().map(|&(i, o)| 9 * i * o).sum();
    let fc_weights = 7 * 7 * 512 * 4096 + 4096 * 4096 + 4096 * 1000;
    let weights = conv_weights + fc_weights;
    let biases: u64 = convs.iter().map(|&(_, o)| o).sum::<u64>() + 4096 + 4096 + 1000;
    assert_eq!(weights, 143_652_544);
    assert_eq!(weights + biases, 143_667_240);
    assert_eq!(s.total_params(), 143_667_240);

    // Activations: input, each conv output, each pool output and the three fc outputs.
    let input = 224 * 224 * 3;
    let convs_out =
        2 * 224 * 224 * 64 + 2 * 112 * 112 * 128 + 4 * 56 * 56 * 256 + 4 * 28 * 28 * 512 + 4 * 14 * 14 * 512;
    let pools_out = 112 * 112 * 64 + 56 * 56 * 128 + 28 * 28 * 256 + 14 * 14 * 512 + 7 * 7 * 512;
    let fcs_out = 4096 + 4096 + 1000;
    assert_eq!(input, 150_528);
    assert_eq!(input + convs_out + pools_out + fcs_out, 16_542_184);
    assert_eq!(s.rows[0].activations, 150_528);
    assert_eq!(s.total_activations(), 16_542_184);
}

#[test]
fn mlp_parameters() {
    let s = mlp(3072, &[1000, 1000], 10).summary().unwrap();
    let by_hand = dense(3072, 1000) + dense(1000, 1000) + dense(1000, 10);
    assert_eq!(by_hand, 4_084_010);
    assert_eq!(s.total_params(), 4_084_010);
    assert_eq!(s.output, Shape::vector(10));
    // A dense layer's MACs are its weights.
    assert_eq!(s.total_macs(), 3072 * 1000 + 1000 * 1000 + 1000 * 10);
}

#[test]
fn vgg_style_cnn_parameters() {
    let s = vgg_cnn().summary().unwrap();
    let by_hand = conv(3, 3, 64, 1)
        + conv(3, 64, 64, 1)
        + conv(3, 64, 128, 1)
        + conv(3, 128, 128, 1)
        + conv(3, 128, 256, 1)
        + conv(3, 256, 256, 1)
        + dense(4 * 4 * 256, 10);
    assert_eq!(by_hand, 1_186_378);
    assert_eq!(s.total_params(), 1_186_378);
    assert_eq!(s.row("flatten").unwrap().output, Shape::vector(4096));
    assert_eq!(s.row("block1_conv1").unwrap().macs, 32 * 32 * 64 * 3 * 3 * 3);
    // The table ends with a totals row, numbers with thousands separators.
    let table = s.to_table();
    let totals = table.rows.last().unwrap();
    assert_eq!(totals[0], "total");
    assert!(totals.contains(&"1,186,378".to_string()), "{totals:?}");
    assert!(s.to_string().contains("Total params: 1,186,378"));
}

/// ResNet v1 parameters (trainable, non-trainable) with n blocks per stage, by hand.
fn resnet_by_hand(n: u64) -> (u64, u64) {
    let bn = |c: u64| (2 * c, 2 * c);
    let mut trainable = conv(3, 3, 16, 1) + bn(16).0;
    let mut frozen = bn(16).1;
    let mut cin = 16;
    for (stage, f) in [16u64, 32, 64].into_iter().enumerate() {
        for block in 0..n {
            trainable += conv(3, cin, f, 1) + bn(f).0 + conv(3, f, f, 1) + bn(f).0;
            frozen += 2 * bn(f).1;
            if stage > 0 && block == 0 {
                trainable += conv(1, cin, f, 1); // projection shortcut
            }
            cin = f;
        }
    }
    trainable += dense(64, 10);
    (trainable, frozen)
}

#[test]
fn resnet_20_and_44() {
    for (depth, total, frozen) in [(20, 274_442, 1_376), (44, 665_994, 3_168)] {
        let (t, f) = resnet_by_hand((depth - 2) / 6);
        assert_eq!((t + f, f), (total, frozen), "resnet{depth} by hand");
        let s = resnet_v1(depth as usize).unwrap().summary().unwrap();
        assert_eq!(s.total_params(), total, "resnet{depth}");
        assert_eq!(s.non_trainable_params(), frozen, "resnet{depth}");
        assert_eq!(s.output, Shape::vector(10));
    }
    let s = resnet_v1(20).unwrap().summary().unwrap();
    assert_eq!(s.row("stage2.block1.projection").unwrap().params(), 16 * 32 + 32);
    assert_eq!(s.row("stage3.block3.add").unwrap().output, Shape::image(64, 8, 8));
    assert!(resnet_v1(21).is_err());
    assert!(resnet_v1(2).is_err());
}

#[test]
fn receptive_fields() {
    assert_eq!(receptive_field(&[(5, 1), (5, 1), (5, 1)]), 13);
    for (k, s) in [(3, 1), (5, 1), (7, 2), (11, 4)] {
        assert_eq!(receptive_field(&[(k, s)]), k);
    }
    // Two stride-2 3×3 layers: top r=1 → 2·1 + 1 = 3 → 2·3 + 1 = 7.
    assert_eq!(receptive_field(&[(3, 2), (3, 2)]), 7);
}

#[test]
fn inception_naive_and_reduced() {
    let (h, w) = (32u64, 32u64);
    let naive = inception_cost((32, 32, 256), 128, 192, 96, None).unwrap();
    let naive_by_hand = h * w * (128 * 256 + 192 * 9 * 256 + 96 * 25 * 256);
    assert_eq!(naive_by_hand, 1_115_684_864);
    assert_eq!(naive.output, (32, 32, 128 + 192 + 96 + 256));
    assert_eq!(naive.output.2, 672);
    assert_eq!(naive.multiplies, 1_115_684_864);

    let reduced = inception_cost((32, 32, 256), 128, 192, 96, Some((128, 32, 64))).unwrap();
    let reduced_by_hand = h * w * (128 * 256 + 128 * 256 + 192 * 9 * 128 + 32 * 256 + 96 * 25 * 32 + 64 * 256);
    assert_eq!(reduced_by_hand, 397_410_304);
    assert_eq!(reduced.output, (32, 32, 480));
    assert_eq!(reduced.multiplies, 397_410_304);
}

#[test]
fn minigooglenet_fashion_mnist() {
    // conv module = conv (weights + bias) + batch norm (4 per channel).
    let module = |k: u64, cin: u64, cout: u64| conv(k, cin, cout, 1) + 4 * cout;
    let inception = |cin: u64, n1: u64, n3: u64| module(1, cin, n1) + module(3, cin, n3);
    let by_hand = module(3, 1, 96)
        + inception(96, 32, 32) // → 64
        + inception(64, 32, 48) // → 80
        + module(3, 80, 80) // downsample → 80 + 80 = 160
        + inception(160, 112, 48) // → 160
        + inception(160, 96, 64) // → 160
        + inception(160, 80, 80) // → 160
        + inception(160, 48, 96) // → 144
        + module(3, 144, 96) // downsample → 96 + 144 = 240
        + inception(240, 176, 160) // → 336
        + inception(336, 176, 160) // → 336
        + dense(336, 10);
    let bn_channels = 96 + 64 + 80 + 80 + 160 + 160 + 160 + 144 + 96 + 336 + 336;
    let s = minigooglenet(1).summary().unwrap();
    assert_eq!(s.total_params(), by_hand);
    assert_eq!(s.non_trainable_params(), 2 * bn_channels);
    assert_eq!(s.output, Shape::vector(10));
    assert_eq!(s.output.to_string(), "[10]");
    // 32 → (3×3 stride 2 valid) 15 → 7 → (7×7 average pool) 1.
    assert_eq!(s.row("downsample1.concat").unwrap().output, Shape::image(160, 15, 15));
    assert_eq!(s.row("downsample2.concat").unwrap().output, Shape::image(240, 7, 7));
    assert_eq!(s.row("avgpool").unwrap().output, Shape::image(336, 1, 1));
    assert_eq!(by_name("minigooglenet").unwrap().total_params(), by_hand);
}

#[test]
fn by_name_knows_the_coursework_models() {
    assert_eq!(by_name("mlp").unwrap().total_params(), 4_084_010);
    assert_eq!(by_name("vgg-cnn").unwrap().total_params(), 1_186_378);
    assert_eq!(by_name("resnet20").unwrap().total_params(), 274_442);
    assert_eq!(by_name("resnet44").unwrap().total_params(), 665_994);
    assert_eq!(by_name("alexnet").unwrap().total_params(), 60_965_224);
    assert_eq!(by_name("vgg19").unwrap().total_params(), 143_667_240);
    assert_eq!(by_name("resnet32").unwrap().name, "resnet32");
    assert!(by_name("resnet21").is_err());
    let err = by_name("lenet").unwrap_err().to_string();
    for name in ["mlp", "vgg-cnn", "minigooglenet", "resnet20", "alexnet", "vgg19"] {
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn bad_specifications_are_config_errors() {
    let dense_on_image = ModelSpec::new("x", Shape::image(3, 8, 8)).add("fc", Dense::new(10));
    let err = dense_on_image.summary().unwrap_err().to_string();
    assert!(err.contains("fc") && err.contains("Flatten"), "{err}");

    let too_small = ModelSpec::new("x", Shape::image(3, 4, 4)).add("conv", Conv2d::new(8, 5).valid());
    assert!(too_small.summary().is_err());

    let bad_groups = ModelSpec::new("x", Shape::image(3, 8, 8)).add("conv", Conv2d::new(8, 3).groups(2));
    assert!(bad_groups.summary().is_err());

    let main = Sequential::new().add("conv", Conv2d::new(8, 3));
    let mismatch = ModelSpec::new("x", Shape::image(3, 8, 8)).add("block", Layer::residual(main, Sequential::new()));
    assert!(mismatch.summary().is_err());
}

#[test]
fn vgg19_weights_without_biases() {
    // Biases: one per output channel of the 16 convolutions (2·64 + 2·128 + 4·256 + 8·512 =
    // 5,504) and per unit of the dense layers (4096 + 4096 + 1000 = 9,192): 14,696 in all.
    let without = vgg19_without_biases().summary().unwrap().total_params();
    assert_eq!(without, 143_667_240 - 14_696);
    assert_eq!(without, 143_652_544);
}
