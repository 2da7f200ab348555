//! Running a pipeline: `pre` stages in order → validators by order group, each group
//! concurrently (the first deny wins and drops the rest) → provider candidates by priority (a
//! failure moves to the next at once) → `post` stages in order.
//!
//! One absolute deadline for the run; each call's timeout is the smaller of the stage's own and
//! what remains, so timeouts never add up. Retries only for retryable failures, with
//! exponential backoff and jitter, never past the deadline. A fail-open stage that fails is
//! skipped and named in [`RunReport::degraded`]; a fail-closed one fails the run.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::{Value, json};
use tracing::Instrument;

use super::remote::RemoteError;
use super::snapshot::{Handler, Pipelines, Plan, Stage};
use crate::extension::panic;
use crate::extension::stage::{OnError, Outcome, StageKind, StageRequest, StageResult};
use crate::observe::metrics::{CallOutcome, RunOutcome};

/// Why a run gave no answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RunError {
    /// No such pipeline (404).
    NotFound,
    /// A stage denied (422).
    Denied { stage: String, code: String, reason: String },
    /// A fail-closed stage failed (503).
    StageUnavailable { stage: String, reason: String },
    /// Every provider candidate failed (503).
    NoProvider { tried: Vec<String> },
    /// The deadline passed (504).
    DeadlineExceeded { stage: Option<String> },
}

/// What a run produced, with what it skipped and how long each stage took.
#[derive(Debug)]
pub(crate) struct RunReport {
    pub(crate) result: Result<Value, RunError>,
    /// Fail-open stages that failed and were skipped.
    pub(crate) degraded: Vec<String>,
    /// One entry per stage call: its `Server-Timing` name and duration.
    pub(crate) timings: Vec<(String, Duration)>,
}

/// What one run shares with every call.
struct RunCx<'a> {
    pipeline: &'a str,
    request_id: &'a str,
    deadline: Instant,
    input: &'a Value,
}

impl RunCx<'_> {
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// How a stage's calls ended.
enum Called {
    /// A well-formed `continue`, `modified` or `deny`.
    Answered(StageResult),
    /// It failed (after any retries).
    Failed(Failure),
}

struct Failure {
    reason: String,
    /// The run's deadline ended it.
    deadline: bool,
}

/// One attempt's failure.
struct AttemptError {
    reason: String,
    retryable: bool,
    timeout: bool,
    outcome: CallOutcome,
    /// No responders: a provider moves on at once.
    no_responders: bool,
}

impl AttemptError {
    fn new(reason: impl Into<String>, retryable: bool) -> Self {
        Self {
            reason: reason.into(),
            retryable,
            timeout: false,
            outcome: CallOutcome::Error,
            no_responders: false,
        }
    }
}

impl Pipelines {
    /// Runs pipeline `name` on `payload`.
    pub(crate) async fn run(&self, name: &str, payload: Value, request_id: &str) -> RunReport {
        let Some(plan) = self.find(name) else {
            return RunReport { result: Err(RunError::NotFound), degraded: Vec::new(), timings: Vec::new() };
        };
        let started = Instant::now();
        let cx =
            RunCx { pipeline: &plan.name, request_id, deadline: started + plan.deadline, input: &payload };
        let mut report = RunReport { result: Ok(Value::Null), degraded: Vec::new(), timings: Vec::new() };
        report.result = self.run_plan(&plan, &cx, payload.clone(), &mut report).await;
        let outcome = match &report.result {
            Ok(_) if report.degraded.is_empty() => RunOutcome::Ok,
            Ok(_) => RunOutcome::Degraded,
            Err(RunError::Denied { .. }) => RunOutcome::Denied,
            Err(RunError::DeadlineExceeded { .. }) => RunOutcome::DeadlineExceeded,
            Err(_) => RunOutcome::Unavailable,
        };
        plan.metrics.run(outcome, started.elapsed());
        report
    }

    async fn run_plan(
        &self,
        plan: &Plan,
        cx: &RunCx<'_>,
        input: Value,
        report: &mut RunReport,
    ) -> Result<Value, RunError> {
        let mut payload = input;
        for stage in &plan.pre {
            if let Some(p) = self.sequential(stage, cx, &payload, report).await? {
                payload = p;
            }
        }
        for group in &plan.validators {
            ensure_time(cx, &group[0])?;
            let mut calls: FuturesUnordered<_> = group
                .iter()
                .map(|stage| {
                    let payload = &payload;
                    async move {
                        let started = Instant::now();
                        (stage, self.call(stage, cx, payload).await, started.elapsed())
                    }
                })
                .collect();
            // Returning drops `calls`: the rest of the group is cancelled, not awaited.
            while let Some((stage, called, took)) = calls.next().await {
                report.timings.push((stage.timing_name.clone(), took));
                match called {
                    Called::Answered(r) => denial(stage, &r)?,
                    Called::Failed(f) => skip_or_fail(stage, f, report)?,
                }
            }
        }
        let mut answer = None;
        let mut tried = Vec::new();
        for stage in &plan.providers {
            ensure_time(cx, stage)?;
            let started = Instant::now();
            let called = self.call(stage, cx, &payload).await;
            report.timings.push((stage.timing_name.clone(), started.elapsed()));
            match called {
                Called::Answered(r) => {
                    denial(stage, &r)?;
                    answer = Some(r.payload.unwrap_or_else(|| payload.clone()));
                    break;
                }
                Called::Failed(f) if f.deadline => {
                    return Err(RunError::DeadlineExceeded { stage: Some(stage.def.id.clone()) });
                }
                Called::Failed(f) => {
                    tracing::info!(pipeline = cx.pipeline, stage = %stage.def.id, reason = %f.reason, "provider failed; trying the next candidate");
                    tried.push(stage.def.id.clone());
                }
            }
        }
        let Some(mut answer) = answer else { return Err(RunError::NoProvider { tried }) };
        for stage in &plan.post {
            if let Some(p) = self.sequential(stage, cx, &answer, report).await? {
                answer = p;
            }
        }
        Ok(answer)
    }

    /// A `pre` or `post` stage: the new payload if it changed it.
    async fn sequential(
        &self,
        stage: &Stage,
        cx: &RunCx<'_>,
        payload: &Value,
        report: &mut RunReport,
    ) -> Result<Option<Value>, RunError> {
        ensure_time(cx, stage)?;
        let started = Instant::now();
        let called = self.call(stage, cx, payload).await;
        report.timings.push((stage.timing_name.clone(), started.elapsed()));
        match called {
            Called::Answered(r) => {
                denial(stage, &r)?;
                Ok(if r.outcome == Outcome::Modified { r.payload } else { None })
            }
            Called::Failed(f) => skip_or_fail(stage, f, report).map(|()| None),
        }
    }

    /// Calls `stage`, retrying retryable failures within the deadline.
    async fn call(&self, stage: &Stage, cx: &RunCx<'_>, payload: &Value) -> Called {
        let def = &stage.def;
        let own = Duration::from_millis(def.timeout_ms);
        let mut attempt = 1;
        loop {
            let remaining = cx.remaining();
            if remaining.is_zero() {
                return Called::Failed(Failure { reason: "the deadline passed".into(), deadline: true });
            }
            if !stage.health.admit(&def.breaker) {
                stage.metrics.call(CallOutcome::CircuitOpen, None);
                return Called::Failed(Failure {
                    reason: "its circuit breaker is open".into(),
                    deadline: false,
                });
            }
            let limit = own.min(remaining);
            let context = if def.kind == StageKind::Post { json!({ "input": cx.input }) } else { json!({}) };
            let request = StageRequest {
                v: crate::extension::stage::ENVELOPE_VERSION,
                request_id: cx.request_id.to_owned(),
                pipeline: cx.pipeline.to_owned(),
                stage: def.id.clone(),
                attempt,
                deadline: chrono::Utc::now() + limit,
                payload: payload.clone(),
                config: def.config.clone(),
                context,
            };
            let started = Instant::now();
            let result = self.attempt(stage, request, limit).await;
            let took = started.elapsed();
            match result {
                Ok(r) => {
                    let outcome =
                        if r.outcome == Outcome::Deny { CallOutcome::Deny } else { CallOutcome::Ok };
                    stage.metrics.call(outcome, Some(took));
                    let (score, breaker) = stage.health.record(true, &def.breaker);
                    stage.metrics.health(score, breaker == super::health::BreakerState::Open);
                    return Called::Answered(r);
                }
                Err(e) => {
                    stage.metrics.call(e.outcome, Some(took));
                    let (score, breaker) = stage.health.record(false, &def.breaker);
                    stage.metrics.health(score, breaker == super::health::BreakerState::Open);
                    tracing::debug!(stage = %def.id, attempt, reason = %e.reason, "stage call failed");
                    if e.timeout && limit < own {
                        return Called::Failed(Failure { reason: e.reason, deadline: true });
                    }
                    // A provider moves to the next candidate at once on a timeout or no responders.
                    let moves_on = def.kind == StageKind::Provider && (e.timeout || e.no_responders);
                    if !e.retryable || moves_on || attempt >= def.retry.max_attempts {
                        return Called::Failed(Failure { reason: e.reason, deadline: false });
                    }
                    let wait = backoff(&def.retry, attempt);
                    if wait >= cx.remaining() {
                        return Called::Failed(Failure { reason: e.reason, deadline: false });
                    }
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One attempt, within `limit`: a well-formed non-error result, or why not.
    async fn attempt(
        &self,
        stage: &Stage,
        request: StageRequest,
        limit: Duration,
    ) -> Result<StageResult, AttemptError> {
        let kind = stage.def.kind;
        let result = match &stage.handler {
            Handler::Compiled(c) => {
                if !c.slot.is_open() {
                    return Err(AttemptError::new(
                        format!("extension `{}` is not running", c.cx.name()),
                        false,
                    ));
                }
                // A panic while building the future counts like one while running it.
                let fut = std::panic::catch_unwind(AssertUnwindSafe(|| (c.f)(c.cx.clone(), request)))
                    .map_err(|p| {
                        AttemptError::new(format!("panicked: {}", panic::panic_message(&*p)), false)
                    })?;
                match tokio::time::timeout(limit, panic::catch(fut).instrument(c.cx.span().clone())).await {
                    Err(_) => return Err(timed_out(limit)),
                    Ok(Err(message)) => return Err(AttemptError::new(format!("panicked: {message}"), false)),
                    Ok(Ok(r)) => r,
                }
            }
            Handler::Remote(subject) => {
                match tokio::time::timeout(limit, self.remote.call(subject, &request, limit)).await {
                    Err(_) | Ok(Err(RemoteError::Timeout(_))) => return Err(timed_out(limit)),
                    Ok(Err(e @ RemoteError::NoResponders(_))) => {
                        return Err(AttemptError {
                            no_responders: true,
                            ..AttemptError::new(e.to_string(), false)
                        });
                    }
                    Ok(Err(e)) => return Err(AttemptError::new(e.to_string(), e.retryable())),
                    Ok(Ok(r)) => r,
                }
            }
        };
        if let Err(problem) = result.check(kind) {
            return Err(AttemptError::new(format!("malformed result: {problem}"), false));
        }
        match (&result.outcome, &result.error) {
            (Outcome::Error, Some(f)) => {
                Err(AttemptError::new(format!("{}: {}", f.code, f.message), f.retryable))
            }
            _ => Ok(result),
        }
    }
}

fn timed_out(limit: Duration) -> AttemptError {
    AttemptError {
        timeout: true,
        outcome: CallOutcome::Timeout,
        ..AttemptError::new(format!("no answer within {} ms", limit.as_millis()), true)
    }
}

/// 504 when the deadline has passed before `stage` could run.
fn ensure_time(cx: &RunCx<'_>, stage: &Stage) -> Result<(), RunError> {
    if cx.remaining().is_zero() {
        return Err(RunError::DeadlineExceeded { stage: Some(stage.def.id.clone()) });
    }
    Ok(())
}

/// A deny ends the run.
fn denial(stage: &Stage, r: &StageResult) -> Result<(), RunError> {
    match (&r.outcome, &r.deny) {
        (Outcome::Deny, Some(d)) => Err(RunError::Denied {
            stage: stage.def.id.clone(),
            code: d.code.clone(),
            reason: d.reason.clone(),
        }),
        _ => Ok(()),
    }
}

/// A failed stage: skipped when it fails open, the run's failure when closed.
fn skip_or_fail(stage: &Stage, f: Failure, report: &mut RunReport) -> Result<(), RunError> {
    if f.deadline {
        return Err(RunError::DeadlineExceeded { stage: Some(stage.def.id.clone()) });
    }
    match stage.def.on_error {
        OnError::Open => {
            tracing::warn!(stage = %stage.def.id, reason = %f.reason, "stage failed; skipped (fails open)");
            report.degraded.push(stage.def.id.clone());
            Ok(())
        }
        OnError::Closed => Err(RunError::StageUnavailable { stage: stage.def.id.clone(), reason: f.reason }),
    }
}

/// The wait before attempt `attempt + 1`: `backoff_ms · 2^(attempt-1)`, at most `max_backoff_ms`,
/// times a random factor in [0.5, 1).
fn backoff(policy: &super::model::RetryPolicy, attempt: u32) -> Duration {
    let base = policy.backoff_ms.saturating_mul(1u64 << (attempt - 1).min(20)).min(policy.max_backoff_ms);
    let jitter = 0.5 + (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 2000.0;
    Duration::from_millis((base as f64 * jitter) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipelines::model::RetryPolicy;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let p = RetryPolicy { max_attempts: 5, backoff_ms: 100, max_backoff_ms: 300 };
        for _ in 0..50 {
            let first = backoff(&p, 1).as_millis();
            assert!((50..100).contains(&first), "{first}");
            let third = backoff(&p, 3).as_millis();
            assert!((150..300).contains(&third), "{third}");
        }
    }
}
