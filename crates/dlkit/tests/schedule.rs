//! Learning-rate schedules against the coursework's Keras `lr_schedule`, worked out by hand.

use dlkit::schedule::{Constant, LrSchedule, StepSchedule};
use dlkit::Result;

fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-12 * want.abs(), "{what}: got {got}, want {want}");
}

#[test]
fn resnet_cifar_matches_the_keras_function() -> Result<()> {
    // Keras: lr = 1e-3; epoch > 85: ×0.5e-3; > 75: ×1e-3; > 65: ×1e-2; > 50: ×1e-1.
    let expected = [
        (0, 1e-3),
        (50, 1e-3),
        (51, 1e-4),
        (65, 1e-4),
        (66, 1e-5),
        (75, 1e-5),
        (76, 1e-6),
        (85, 1e-6),
        (86, 5e-7),
        (99, 5e-7),
    ];
    let mut schedule = StepSchedule::resnet_cifar(1e-3)?;
    for (epoch, lr) in expected {
        assert_close(schedule.lr_at(epoch), lr, &format!("epoch {epoch}"));
        let asked = schedule.at_epoch(epoch);
        assert!(asked.is_some(), "epoch {epoch}: step schedule always answers");
        assert_close(asked.unwrap_or(f64::NAN), lr, &format!("at_epoch({epoch})"));
    }
    assert_eq!(schedule.at_iteration(123), None, "epoch-wise schedule leaves steps alone");
    // Another base rate scales the whole curve.
    assert_close(StepSchedule::resnet_cifar(0.1)?.lr_at(70), 1e-3, "base 0.1, epoch 70");
    Ok(())
}

#[test]
fn scaled_schedule_keeps_the_shape() -> Result<()> {
    // 10 epochs: boundaries 50, 65, 75, 85 → 5, 6, 7, 8.
    let s = StepSchedule::resnet_cifar_scaled(1e-3, 10)?;
    assert_eq!(s.boundaries.iter().map(|b| b.0).collect::<Vec<_>>(), vec![5, 6, 7, 8]);
    let expected = [1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-4, 1e-5, 1e-6, 5e-7];
    for (epoch, lr) in expected.into_iter().enumerate() {
        assert_close(s.lr_at(epoch), lr, &format!("10-epoch run, epoch {epoch}"));
    }
    // 100 epochs is the original; 200 doubles every boundary.
    assert_eq!(StepSchedule::resnet_cifar_scaled(1e-3, 100)?, StepSchedule::resnet_cifar(1e-3)?);
    let long = StepSchedule::resnet_cifar_scaled(1e-3, 200)?;
    assert_eq!(long.boundaries.iter().map(|b| b.0).collect::<Vec<_>>(), vec![100, 130, 150, 170]);
    Ok(())
}

#[test]
fn constant_and_custom_steps() -> Result<()> {
    let mut c = Constant::new(0.05)?;
    assert_eq!((c.at_epoch(0), c.at_epoch(40)), (Some(0.05), Some(0.05)));
    assert_eq!(c.at_iteration(7), None);
    // Through a trait object, as the training loop holds it.
    let mut boxed: Box<dyn LrSchedule> = Box::new(StepSchedule::new(1.0, vec![(2, 0.5)])?);
    assert_eq!((boxed.at_epoch(2), boxed.at_epoch(3)), (Some(1.0), Some(0.5)));
    Ok(())
}

#[test]
fn bad_schedules_are_errors() {
    assert!(Constant::new(0.0).is_err());
    assert!(Constant::new(f64::INFINITY).is_err());
    assert!(StepSchedule::new(1e-3, vec![(10, 0.1), (5, 0.01)]).is_err());
    assert!(StepSchedule::new(1e-3, vec![(10, -0.1)]).is_err());
    assert!(StepSchedule::resnet_cifar(-1.0).is_err());
    assert!(StepSchedule::resnet_cifar(1e-3).and_then(|s| s.rescaled(0, 10)).is_err());
}

#[test]
fn step_schedule_round_trips_through_json() -> Result<()> {
    let s = StepSchedule::resnet_cifar(1e-3)?;
    let json = serde_json::to_string(&s).map_err(|e| dlkit::Error::Config(e.to_string()))?;
    let back: StepSchedule =
        serde_json::from_str(&json).map_err(|e| dlkit::Error::Config(e.to_string()))?;
    assert_eq!(back, s);
    Ok(())
}
