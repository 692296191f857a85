//! Failure artifacts: a directory with the case (workload, strategy, faults, crash point,
//! image recipe), the crash image, the oracle's expectation, the violated invariant with
//! expected vs actual, the operation trace and the faults that fired. `replay` re-checks the
//! saved image; a case without an image (a violation found while running) is run again.

use crate::crashgen::Damage;
use crate::engine::EngineConfig;
use crate::explore::{rerun, Case, Failure};
use crate::image::Image;
use crate::oracle::{Expectation, State, Violation};
use crate::verify::{check_image, check_recovery_crash, ImageCase};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What is saved besides the case and the image.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Verdict {
    violation: Violation,
    expectation: Option<Expectation>,
    power_loss: bool,
    damage: Option<Damage>,
    stable_state: Option<State>,
}

/// A loaded artifact.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// How to run it again.
    pub case: Case,
    /// The violation recorded.
    pub violation: Violation,
    expectation: Option<Expectation>,
    power_loss: bool,
    damage: Option<Damage>,
    stable_state: Option<State>,
    image: Option<Image>,
}

/// Saves a failure under `root`; returns the artifact directory.
pub fn save(failure: &Failure, root: &Path) -> io::Result<PathBuf> {
    let name = format!(
        "{}-{}-s{}-inv{}-op{}",
        failure.case.workload.name,
        failure.case.strategy,
        failure.case.config.media.sector,
        failure.violation.invariant.number(),
        failure.case.crash_op.unwrap_or(0)
    );
    let dir = root.join(name);
    fs::create_dir_all(&dir)?;
    write_json(&dir.join("case.json"), &failure.case)?;
    let verdict = Verdict {
        violation: failure.violation.clone(),
        expectation: failure.expectation.clone(),
        power_loss: failure.power_loss,
        damage: failure.damage.clone(),
        stable_state: failure.stable_state.clone(),
    };
    write_json(&dir.join("verdict.json"), &verdict)?;
    fs::write(
        dir.join("violation.txt"),
        format!("{}\n", failure.violation),
    )?;
    let trace: Vec<String> = failure.trace.iter().map(ToString::to_string).collect();
    fs::write(dir.join("trace.txt"), trace.join("\n") + "\n")?;
    let mut faults: Vec<String> = failure
        .fired
        .iter()
        .map(|f| format!("fired: {f}"))
        .collect();
    if let Some(c) = &failure.case.countdown {
        faults.push(format!("countdown: {c}"));
    }
    if let Some(s) = &failure.case.swarm {
        faults.push(format!("swarm: {s:?}"));
    }
    if let Some(v) = failure.case.variant {
        faults.push(format!(
            "image recipe: {v:?} seed {:?}",
            failure.case.image_seed
        ));
    }
    if let Some(d) = &failure.damage {
        faults.push(format!("damage (F13): {d:?}"));
    }
    fs::write(dir.join("faults.txt"), faults.join("\n") + "\n")?;
    if let Some(image) = &failure.image {
        image.save(&dir.join("image"))?;
    }
    Ok(dir)
}

/// Loads an artifact directory.
pub fn load(dir: &Path) -> io::Result<Artifact> {
    let case: Case = read_json(&dir.join("case.json"))?;
    let verdict: Verdict = read_json(&dir.join("verdict.json"))?;
    let image_dir = dir.join("image");
    let image = if image_dir.exists() {
        Some(Image::load(&image_dir)?)
    } else {
        None
    };
    Ok(Artifact {
        case,
        violation: verdict.violation,
        expectation: verdict.expectation,
        power_loss: verdict.power_loss,
        damage: verdict.damage,
        stable_state: verdict.stable_state,
        image,
    })
}

/// Checks the saved image again (or runs the case again if there is none, or if the failure
/// followed a crash inside recovery, whose images the engine's recovery makes); returns the
/// violation found now, if any.
pub fn replay(artifact: &Artifact, engine: &EngineConfig) -> Option<Violation> {
    let engine = engine.with_settings(artifact.case.workload.settings);
    match (&artifact.image, &artifact.expectation) {
        _ if artifact.case.in_recovery => {
            rerun(&artifact.case, &engine).failure.map(|f| f.violation)
        }
        (Some(image), _) if artifact.stable_state.is_some() => {
            let state = artifact.stable_state.as_ref()?;
            check_recovery_crash(image, state, &engine).err()
        }
        (Some(image), Some(expectation)) => {
            let case = ImageCase {
                image,
                expectation,
                power_loss: artifact.power_loss,
                damage: artifact.damage.as_ref(),
                aligned_probe: artifact.case.config.aligned_probe,
            };
            check_image(case, &engine, false).err()
        }
        _ => rerun(&artifact.case, &engine).failure.map(|f| f.violation),
    }
}

/// The one-line command that replays an artifact.
pub fn reproduce_command(dir: &Path) -> String {
    format!("walstore-crashtest replay {}", dir.display())
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    fs::write(path, text)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<T> {
    let text = fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
