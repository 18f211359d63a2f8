//! The training state saved after every epoch, so that an interrupted run (kernel restart,
//! Ctrl-C, a killed process) resumes from its last completed epoch and ends as an
//! uninterrupted run would.
//!
//! `<folder>/epoch-NNNN/` holds `state.json` (history, step counter, learning rate, batch size,
//! callbacks' figures), `weights.safetensors` (every variable, batch-norm statistics
//! included), `optimizer.safetensors` and `callback-K.safetensors` (weights a callback keeps).
//! A state is written into a hidden folder and renamed into place whole, so a crash leaves
//! either the previous complete state or the new one. Everything else a run draws — batch
//! order, augmentation, dropout masks — is a function of the seed, the epoch and the step.

use crate::callbacks::{Callback, CallbackState};
use crate::error::{Error, Result};
use crate::history::History;
use crate::optim::TrainOptimizer;
use candle_core::Device;
use candle_nn::VarMap;
use std::path::{Path, PathBuf};

/// What `state.json` holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct TrainingState {
    /// The epochs done so far.
    pub history: History,
    /// Optimisation steps done so far.
    pub iteration: usize,
    /// The batch size of the last epoch.
    pub batch_size: usize,
    /// The optimizer's learning rate after the last epoch's callbacks.
    learning_rate: f64,
    /// Each callback's name and figures, in order.
    callbacks: Vec<(String, serde_json::Value)>,
}

/// Save the state after an epoch into `folder/epoch-NNNN` and drop older states.
pub(super) fn save(
    folder: &Path,
    varmap: &VarMap,
    optimizer: &dyn TrainOptimizer,
    callbacks: &[Box<dyn Callback + '_>],
    history: &History,
    iteration: usize,
    batch_size: usize,
) -> Result<()> {
    let epoch = history.epochs.len();
    let partial = folder.join(format!(".epoch-{epoch:04}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| Error::io(&partial, e))?;
    }
    std::fs::create_dir_all(&partial).map_err(|e| Error::io(&partial, e))?;
    let mut saved_callbacks = Vec::new();
    for (k, callback) in callbacks.iter().enumerate() {
        let CallbackState { values, tensors } = callback.state()?;
        if !tensors.is_empty() {
            crate::io::save_tensors(&tensors, &partial.join(format!("callback-{k}.safetensors")))?;
        }
        saved_callbacks.push((callback.name().to_string(), values));
    }
    crate::io::save_varmap(varmap, &partial.join("weights.safetensors"))?;
    crate::io::save_tensors(&optimizer.state()?, &partial.join("optimizer.safetensors"))?;
    let state = TrainingState {
        history: history.clone(),
        iteration,
        batch_size,
        learning_rate: optimizer.learning_rate(),
        callbacks: saved_callbacks,
    };
    crate::io::write_json(&partial.join("state.json"), &state)?;
    let done = folder.join(format!("epoch-{epoch:04}"));
    std::fs::rename(&partial, &done).map_err(|e| Error::io(&done, e))?;
    for old in states(folder)?.into_iter().filter(|(e, _)| *e < epoch) {
        std::fs::remove_dir_all(&old.1).map_err(|e| Error::io(&old.1, e))?;
    }
    Ok(())
}

/// Restore the newest complete state in `folder`, if there is one: weights, optimizer state and
/// learning rate, callbacks' state; returns the state's history and counters.
pub(super) fn load(
    folder: &Path,
    varmap: &VarMap,
    optimizer: &mut dyn TrainOptimizer,
    callbacks: &mut [Box<dyn Callback + '_>],
) -> Result<Option<TrainingState>> {
    let Some((_, dir)) = states(folder)?.pop() else { return Ok(None) };
    let state_file = dir.join("state.json");
    let state: TrainingState = crate::io::read_json(&state_file)?;
    let names: Vec<&str> = callbacks.iter().map(|c| c.name()).collect();
    let saved: Vec<&str> = state.callbacks.iter().map(|(n, _)| n.as_str()).collect();
    if names != saved {
        return Err(Error::bad_file(
            &state_file,
            format!("was saved with the callbacks {saved:?}, this run has {names:?}; remove the folder to start afresh"),
        ));
    }
    crate::io::load_varmap(varmap, &dir.join("weights.safetensors"))?;
    let optimizer_file = dir.join("optimizer.safetensors");
    let optimizer_state = crate::io::load_tensors(&optimizer_file, &Device::Cpu)?;
    optimizer
        .load_state(&optimizer_state)
        .map_err(|e| Error::bad_file(&optimizer_file, format!("cannot restore the optimizer: {e}")))?;
    optimizer.set_learning_rate(state.learning_rate);
    for (k, (callback, (_, values))) in callbacks.iter_mut().zip(&state.callbacks).enumerate() {
        let file = dir.join(format!("callback-{k}.safetensors"));
        let tensors = if file.exists() { crate::io::load_tensors(&file, &Device::Cpu)?.into_iter().collect() } else { Vec::new() };
        callback.load_state(CallbackState { values: values.clone(), tensors })?;
    }
    Ok(Some(state))
}

/// Remove the saved states (after a run completes).
pub(super) fn remove(folder: &Path) -> Result<()> {
    if folder.exists() {
        std::fs::remove_dir_all(folder).map_err(|e| Error::io(folder, e))?;
    }
    Ok(())
}

/// The complete states in `folder` as (epoch, path), oldest first.
fn states(folder: &Path) -> Result<Vec<(usize, PathBuf)>> {
    if !folder.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(|e| Error::io(folder, e))? {
        let path = entry.map_err(|e| Error::io(folder, e))?.path();
        let epoch = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("epoch-"))
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(epoch) = epoch.filter(|_| path.join("state.json").is_file()) {
            found.push((epoch, path));
        }
    }
    found.sort();
    Ok(found)
}
