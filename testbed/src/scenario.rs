//! What is measured: the three rows of the seed table, scaled to what this
//! machine can offer, and the sweep that raises the offered packet rate
//! until the relay loses more than 0.1 %.
//!
//! Scaling changes only the number of sessions; each session keeps the
//! seed's shape (bitrate and payload), so the per-packet work is the same as
//! at full scale and CPU-µs per relayed packet stays comparable.

use serde::Serialize;

use crate::load::LoadShape;
use crate::measure::GENERATOR_SATURATED_PCT;
use crate::runner::RunResult;

/// One row of the seed table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Row {
    pub number: u8,
    pub sessions: u32,
    pub kbps: u32,
    pub payload: u32,
    /// Share of the sessions this 2-core machine offers by default: the
    /// generator gets one core and must stay below saturation.
    pub default_scale: f64,
}

pub const ROWS: [Row; 3] = [
    Row {
        number: 1,
        sessions: 2000,
        kbps: 50,
        payload: 150,
        default_scale: 0.25,
    },
    Row {
        number: 2,
        sessions: 2000,
        kbps: 50,
        payload: 1200,
        default_scale: 0.25,
    },
    Row {
        number: 3,
        sessions: 1000,
        kbps: 1500,
        payload: 1200,
        default_scale: 0.1,
    },
];

/// How long each phase of a run lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timing {
    pub duration_secs: u32,
    pub warmup_secs: u32,
    pub ramp_up_secs: u32,
}

impl Timing {
    pub fn rows(quick: bool) -> Timing {
        if quick {
            Timing {
                duration_secs: 3,
                warmup_secs: 1,
                ramp_up_secs: 1,
            }
        } else {
            Timing {
                duration_secs: 10,
                warmup_secs: 2,
                ramp_up_secs: 1,
            }
        }
    }

    pub fn sweep(quick: bool) -> Timing {
        if quick {
            Timing {
                duration_secs: 2,
                warmup_secs: 1,
                ramp_up_secs: 1,
            }
        } else {
            Timing {
                duration_secs: 5,
                warmup_secs: 1,
                ramp_up_secs: 1,
            }
        }
    }
}

impl Row {
    pub fn scaled_sessions(&self, scale: f64) -> u32 {
        ((f64::from(self.sessions) * scale).round() as u32).max(1)
    }

    pub fn shape(&self, scale: f64, timing: Timing) -> LoadShape {
        LoadShape {
            sessions: self.scaled_sessions(scale),
            payload: self.payload,
            kbps: self.kbps,
            duration_secs: timing.duration_secs,
            warmup_secs: timing.warmup_secs,
            ramp_up_secs: timing.ramp_up_secs,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} × {} kbps × {} B",
            self.sessions, self.kbps, self.payload
        )
    }
}

pub fn row(number: u8) -> Option<Row> {
    ROWS.iter().copied().find(|r| r.number == number)
}

/// The sweep's shape per session: row 1's (50 kbps × 150 B, the highest
/// packet rate per bit).
pub const SWEEP_KBPS: u32 = 50;
pub const SWEEP_PAYLOAD: u32 = 150;

/// Session counts of the sweep's steps (each step 41.7 × 2 relayed pps per
/// session).
pub fn sweep_sessions(quick: bool) -> Vec<u32> {
    if quick {
        vec![25, 100, 400]
    } else {
        vec![
            50, 100, 200, 400, 600, 800, 1000, 1300, 1600, 2000, 2500, 3000, 4000, 5000,
        ]
    }
}

pub fn sweep_shape(sessions: u32, timing: Timing) -> LoadShape {
    LoadShape {
        sessions,
        payload: SWEEP_PAYLOAD,
        kbps: SWEEP_KBPS,
        duration_secs: timing.duration_secs,
        warmup_secs: timing.warmup_secs,
        ramp_up_secs: timing.ramp_up_secs,
    }
}

/// Loss above which the sweep stops (0.1 %).
pub const SWEEP_LOSS_LIMIT: f64 = 0.001;

/// Why a sweep ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum SweepStop {
    /// The relay lost more than 0.1 % with its cores saturated: its limit
    /// was found.
    RelayLoss,
    /// More than 0.1 % was lost but the relay's cores were not saturated:
    /// the loss is on the generator's side of this machine (its core, the
    /// kernel's softirq work there), so the relay's limit is higher.
    LossRelayNotSaturated,
    /// The generator used more than ~85 % of its core: the relay's limit is
    /// above what this machine can offer.
    GeneratorSaturated,
    /// Every step passed.
    StepsExhausted,
    /// A step failed to run.
    Failed(String),
}

/// Whether the sweep continues after `step`, and if not, why.
/// `relay_cores` is how many CPUs the relay was pinned to.
pub fn sweep_next(step: &RunResult, relay_cores: usize) -> Option<SweepStop> {
    let established_all = step.summary.sessions_established >= u64::from(step.shape.sessions);
    let relay_saturated = step.headline_pct() > GENERATOR_SATURATED_PCT * relay_cores.max(1) as f64;
    if step.summary.loss_ratio > SWEEP_LOSS_LIMIT || !established_all {
        if relay_saturated {
            Some(SweepStop::RelayLoss)
        } else {
            Some(SweepStop::LossRelayNotSaturated)
        }
    } else if step
        .figures
        .generator_pct
        .is_some_and(|g| g > GENERATOR_SATURATED_PCT)
    {
        Some(SweepStop::GeneratorSaturated)
    } else {
        None
    }
}

/// The result of a sweep for one relay.
#[derive(Debug, Clone, Serialize)]
pub struct Sweep {
    pub relay: String,
    pub steps: Vec<RunResult>,
    pub stop: SweepStop,
}

impl Sweep {
    /// The highest measured relayed packet rate of a step with at most 0.1 %
    /// loss and all sessions established.
    pub fn max_ok_relayed_pps(&self) -> Option<f64> {
        self.steps
            .iter()
            .filter(|s| {
                s.summary.loss_ratio <= SWEEP_LOSS_LIMIT
                    && s.summary.sessions_established >= u64::from(s.shape.sessions)
            })
            .map(RunResult::relayed_pps)
            .fold(None, |m, v| Some(m.map_or(v, |m: f64| m.max(v))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::tests::result_with;

    #[test]
    fn rows_match_the_seed_table() {
        let r: Vec<_> = ROWS
            .iter()
            .map(|r| (r.sessions, r.kbps, r.payload))
            .collect();
        assert_eq!(r, [(2000, 50, 150), (2000, 50, 1200), (1000, 1500, 1200)]);
        assert_eq!(row(3).unwrap().number, 3);
        assert!(row(4).is_none());
    }

    #[test]
    fn scaling_changes_sessions_not_shape() {
        let r = row(3).unwrap();
        let s = r.shape(0.1, Timing::rows(false));
        assert_eq!((s.sessions, s.kbps, s.payload), (100, 1500, 1200));
        assert_eq!(s.duration_secs, 10);
        assert_eq!(row(1).unwrap().scaled_sessions(0.0001), 1);
        assert_eq!(row(1).unwrap().scaled_sessions(1.0), 2000);
    }

    #[test]
    fn sweep_steps_rise() {
        for quick in [true, false] {
            let s = sweep_sessions(quick);
            assert!(s.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn sweep_stops_on_loss_or_generator_saturation() {
        let ok = result_with(100, 0.0, 50.0, 10_000.0);
        assert_eq!(sweep_next(&ok, 1), None);
        // result_with's relay uses 20 % of a core: not saturated.
        let lossy = result_with(200, 0.002, 50.0, 20_000.0);
        assert_eq!(
            sweep_next(&lossy, 1),
            Some(SweepStop::LossRelayNotSaturated)
        );
        let mut busy = lossy.clone();
        busy.figures.relay_pct = 97.0;
        assert_eq!(sweep_next(&busy, 1), Some(SweepStop::RelayLoss));
        // On two cores 97 % is half busy.
        assert_eq!(sweep_next(&busy, 2), Some(SweepStop::LossRelayNotSaturated));
        let saturated = result_with(300, 0.0, 95.0, 30_000.0);
        assert_eq!(
            sweep_next(&saturated, 1),
            Some(SweepStop::GeneratorSaturated)
        );

        let sweep = Sweep {
            relay: "x".into(),
            steps: vec![ok, saturated, lossy],
            stop: SweepStop::RelayLoss,
        };
        // The lossy step is faster but does not count.
        assert_eq!(sweep.max_ok_relayed_pps(), Some(30_000.0));
        let empty = Sweep {
            relay: "x".into(),
            steps: vec![],
            stop: SweepStop::Failed("x".into()),
        };
        assert_eq!(empty.max_ok_relayed_pps(), None);
    }
}
