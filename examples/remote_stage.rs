//! A remote pipeline stage: serves the guardrails extension's pure stages (`normalize_text`,
//! `pii_guard`, `mask_pii`, `mock`) over NATS, with exactly the code annex runs compiled in.
//!
//! ```sh
//! cargo run --example remote_stage -- --nats-url nats://127.0.0.1:4222   # or NATS_URL=…
//! ```
//!
//! One NATS service `annex-guardrails` (discoverable with `nats micro ls`), one endpoint per
//! stage on `annex.stage.<kind>.<name>.v1`, in a queue group per stage so any number of copies
//! share the load. Each request is a `StageRequest` JSON body; each reply a `StageResult` JSON
//! body; a request that is not one is answered with a non-retryable `bad_request` error, and one
//! past its deadline is not worked on (`deadline_exceeded`). Prints `ready` once subscribed.
//! Stops on SIGTERM or Ctrl-C; with `--exit-with-stdin`, also when its stdin closes (for a
//! supervising parent, such as the tests: the copy cannot outlive them).
//! docs/remote-stages.md explains the protocol for other languages.

use std::io::Write as _;
use std::process::ExitCode;

use annex_core::stage::{ENVELOPE_VERSION, StageRequest, StageResult};
use annex_ext_guardrails::{PURE_STAGES, subject};
use async_nats::service::ServiceExt;
use futures::StreamExt;

const SERVICE: &str = "annex-guardrails";

struct Args {
    url: String,
    exit_with_stdin: bool,
}

fn args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut url = std::env::var("NATS_URL").ok();
    let mut exit_with_stdin = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--nats-url" => url = Some(args.next().ok_or("--nats-url needs a value")?),
            "--exit-with-stdin" => exit_with_stdin = true,
            other => match other.strip_prefix("--nats-url=") {
                Some(v) => url = Some(v.to_owned()),
                None => {
                    return Err(format!(
                        "unknown argument `{other}` (usage: remote_stage [--nats-url URL] [--exit-with-stdin])"
                    ));
                }
            },
        }
    }
    Ok(Args { url: url.unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned()), exit_with_stdin })
}

/// Resolves once stdin is closed (never, unless `watch`).
async fn stdin_closed(watch: bool) {
    if !watch {
        return std::future::pending().await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A plain thread: a blocking read must not keep the runtime from shutting down.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// The answer to one request body, for the stage `name`.
async fn answer(name: &str, body: &[u8]) -> StageResult {
    let request: StageRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return StageResult::error("bad_request", false, format!("not a StageRequest: {e}")),
    };
    if request.v != ENVELOPE_VERSION {
        return StageResult::error(
            "bad_request",
            false,
            format!("envelope version {} is not supported (this stage speaks {ENVELOPE_VERSION})", request.v),
        );
    }
    if request.remaining().is_zero() {
        return StageResult::error("deadline_exceeded", false, "the request arrived after its deadline");
    }
    annex_ext_guardrails::call(name, &request)
        .await
        .unwrap_or_else(|| StageResult::error("unknown_stage", false, format!("no stage `{name}` here")))
}

async fn serve(url: &str, exit_with_stdin: bool) -> Result<(), async_nats::Error> {
    let client = async_nats::ConnectOptions::new().name(SERVICE).connect(url).await?;
    let service = client
        .service_builder()
        .description("annex guardrails stages (examples/remote_stage.rs)")
        .start(SERVICE, env!("CARGO_PKG_VERSION"))
        .await?;
    for (name, kind) in PURE_STAGES {
        let subject = subject(kind, name);
        let mut endpoint = service.endpoint_builder().name(name).queue_group(&subject).add(&subject).await?;
        tokio::spawn(async move {
            while let Some(request) = endpoint.next().await {
                tokio::spawn(async move {
                    // A publish without a reply subject has nobody to answer.
                    if request.message.reply.is_none() {
                        return;
                    }
                    let result = answer(name, &request.message.payload).await;
                    match serde_json::to_vec(&result) {
                        Ok(body) => {
                            if let Err(e) = request.respond(Ok(body.into())).await {
                                eprintln!("remote_stage: cannot reply on {name}: {e}");
                            }
                        }
                        Err(e) => eprintln!("remote_stage: cannot encode the result of {name}: {e}"),
                    }
                });
            }
        });
    }
    // A round trip on this connection: the server has taken every subscription above once its
    // answer is back, so callers find the endpoints as soon as `ready` is printed.
    client.request(format!("$SRV.PING.{SERVICE}"), "".into()).await?;
    println!("ready");
    let _ = std::io::stdout().flush();

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = stdin_closed(exit_with_stdin) => {}
    }
    service.stop().await?;
    client.drain().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("remote_stage: {e}");
            return ExitCode::from(2);
        }
    };
    match serve(&args.url, args.exit_with_stdin).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("remote_stage: {e} (NATS at {})", args.url);
            ExitCode::FAILURE
        }
    }
}
