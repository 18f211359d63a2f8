//! The shape-inferred summaries agree with the tensors a real `VarMap` holds after building
//! each candle model (trainable and batch-norm running statistics alike).

use candle_core::Device;
use candle_nn::VarMap;
use dlkit::experiment::ModelChoice;
use dlkit::summary;

fn varmap_counts(choice: &ModelChoice) -> (u64, u64) {
    let vm = VarMap::new();
    choice.build(&vm, 0, &Device::Cpu).unwrap();
    let data = vm.data().lock().unwrap();
    let total = data.values().map(|v| v.elem_count() as u64).sum();
    let running = data
        .iter()
        .filter(|(k, _)| k.ends_with("running_mean") || k.ends_with("running_var"))
        .map(|(_, v)| v.elem_count() as u64)
        .sum();
    (total, running)
}

#[test]
fn summaries_match_the_built_models() {
    for (name, channels, spec) in [
        ("mlp", 3, summary::by_name("mlp").unwrap()),
        ("vgg-cnn", 3, summary::by_name("vgg-cnn").unwrap()),
        ("resnet20", 3, summary::by_name("resnet20").unwrap()),
        ("resnet44", 3, summary::by_name("resnet44").unwrap()),
        ("minigooglenet", 1, summary::by_name("minigooglenet").unwrap()),
        ("minigooglenet", 3, summary::minigooglenet(3).summary().unwrap()),
        ("attention56-mini", 3, summary::by_name("attention56-mini").unwrap()),
        ("attention56-paper", 3, summary::by_name("attention56-paper").unwrap()),
    ] {
        let (total, running) = varmap_counts(&ModelChoice::from_name(name, channels).unwrap());
        assert_eq!(spec.total_params(), total, "{name} ({channels} channels): total");
        assert_eq!(spec.non_trainable_params(), running, "{name} ({channels} channels): non-trainable");
    }
}
