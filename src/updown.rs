//! `dockhand up`, `down` and `restart`: drive the profile's supervisor
//! over its control socket.
//!
//! `up` uses the supervisor that runs (by hand or as a service); when none
//! does, it makes sure the login service is installed and loaded (saying
//! so in one line), waits for that supervisor, asks it to start the engine
//! (also after `down` or an idle stop) and follows its phases until docker
//! answers. `down` stops the engine and keeps it stopped; `restart`
//! restarts it with the same progress as `up`.

use std::os::fd::AsRawFd;
use std::time::Duration;

use serde::Serialize;
use tokio::time::{Instant, sleep, sleep_until};

use crate::config::Context;
use crate::config::Profile;
use crate::control::State;
use crate::control_socket::{Client, Line, Req};
use crate::error::{Error, Result};
use crate::progress::{Mode, Progress, secs};
use crate::reach::{PATIENCE, Reach, reach};
use crate::state::Phase;

/// `up --json` / `restart --json` / `down --json`.
#[derive(Serialize)]
struct Outcome<'a> {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// Whole milliseconds from the command's start.
    elapsed_ms: u128,
    state: Option<&'a State>,
}

/// With `--json`, a failure too is one document on stdout (`ok: false`,
/// the error, `state` null); the message also goes to stderr and the exit
/// code is the error's.
pub fn json_errors(json: bool, f: impl FnOnce() -> Result<u8>) -> Result<u8> {
    let started = std::time::Instant::now();
    let r = f();
    if json && let Err(e) = &r {
        crate::ui::print_json(&Outcome {
            ok: false,
            error: Some(&e.to_string()),
            elapsed_ms: started.elapsed().as_millis(),
            state: None,
        });
    }
    r
}

/// The engine the supervisor adopted without a process it can verify (it
/// answered on the socket when the supervisor came): watched, never
/// stopped or restarted by dockhand, so `down` and `restart` can't do
/// what they say.
fn foreign_engine(p: &Profile, st: &State) -> Option<Error> {
    let running = matches!(st.phase, Phase::Ready | Phase::Unhealthy);
    (running && st.adopted && st.engine_pid.is_none()).then(|| {
        Error::NotReady(format!(
            "the engine on {} was not started by dockhand: it answered there when the supervisor came, so dockhand watches it but never stops or restarts it; stop it where it was started (`dockhand up` then starts dockhand's own)",
            p.socket.display()
        ))
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))
}

pub fn up(ctx: &Context, p: &Profile, timeout: Option<Duration>, json: bool) -> Result<u8> {
    let timeout = timeout.unwrap_or(p.start_timeout + Duration::from_secs(30));
    let started = std::time::Instant::now();
    runtime()?.block_on(async {
        let deadline = Instant::now() + timeout;
        let client = match reach(p, PATIENCE).await {
            Reach::Answers(c, _) => c,
            Reach::Silent(s) => return Err(s.error(p)),
            Reach::Nobody => {
                ensure_service(ctx, p)?;
                wait_for_supervisor(p, deadline, json).await?
            }
        };
        drive(
            client,
            p,
            Req::Start { follow: !json },
            deadline,
            json,
            started,
        )
        .await
    })
}

pub fn restart(p: &Profile, timeout: Option<Duration>, json: bool) -> Result<u8> {
    let timeout = timeout.unwrap_or(p.stop_timeout + p.start_timeout + Duration::from_secs(30));
    let started = std::time::Instant::now();
    runtime()?.block_on(async {
        let deadline = Instant::now() + timeout;
        let client = match reach(p, PATIENCE).await {
            Reach::Answers(c, st) => match foreign_engine(p, &st) {
                Some(e) => return Err(e),
                None => c,
            },
            Reach::Silent(s) => return Err(s.error(p)),
            Reach::Nobody => return Err(no_supervisor(p)),
        };
        drive(
            client,
            p,
            Req::Restart { follow: !json },
            deadline,
            json,
            started,
        )
        .await
    })
}

pub fn down(ctx: &Context, p: &Profile, service: bool, json: bool) -> Result<u8> {
    let started = std::time::Instant::now();
    let state = runtime()?.block_on(async {
        let mut c = match reach(p, PATIENCE).await {
            Reach::Answers(c, st) => match foreign_engine(p, &st) {
                Some(e) => return Err(e),
                None => c,
            },
            Reach::Silent(s) => return Err(s.error(p)),
            Reach::Nobody => return unsupervised_engine(p).await.map(|_| None),
        };
        let limit = p.stop_timeout + Duration::from_secs(30);
        match tokio::time::timeout(limit, c.call(&Req::Stop)).await {
            // The supervisor itself ended meanwhile (stopped with its
            // service): what counts is whether an engine still answers.
            Ok(Err(Error::Io { source, .. }))
                if source.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                unsupervised_engine(p).await.map(|_| None)
            }
            Ok(r) => r.map(|l| Some(l.state)).map(Option::flatten),
            Err(_) => Err(Error::NotReady(format!(
                "the supervisor took the stop but did not finish it within {}: it goes on stopping the engine (`dockhand status` shows when it is stopped; `dockhand logs` why it takes long)",
                humantime::format_duration(limit)
            ))),
        }
    })?;
    if !json {
        match &state {
            Some(_) => println!(
                "stopped; held stopped until `dockhand up --profile {}`",
                p.name
            ),
            None => println!(
                "no supervisor runs for profile `{}` and no engine answers on {}: nothing to stop",
                p.name,
                p.socket.display()
            ),
        }
    }
    if service {
        with_stdout_on_stderr(json, || crate::service::unload::unload(ctx))?;
    }
    if json {
        crate::ui::print_json(&Outcome {
            ok: true,
            error: None,
            elapsed_ms: started.elapsed().as_millis(),
            state: state.as_ref(),
        });
    }
    Ok(0)
}

/// Without a supervisor, `down` has nothing to ask: fine when no engine
/// answers on the profile's socket; an engine that does is not stopped
/// behind the user's back, and not ignored either.
async fn unsupervised_engine(p: &Profile) -> Result<()> {
    let ping = crate::probe::ping(&p.socket, Duration::from_secs(2)).await;
    if ping != crate::probe::Ping::Ok {
        return Ok(());
    }
    Err(Error::NotReady(format!(
        "no supervisor runs for profile `{0}`, but an engine answers on {1}: `dockhand down` stops engines through their supervisor. Run `dockhand up --profile {0}` (it adopts that engine), then `dockhand down --profile {0}`; or stop the engine yourself",
        p.name,
        p.socket.display()
    )))
}

fn no_supervisor(p: &Profile) -> Error {
    Error::NotReady(format!(
        "no supervisor runs for profile `{}`: start it with `dockhand up --profile {}`",
        p.name, p.name
    ))
}

/// No supervisor: install (or update and load) the login service, or
/// start it when the manager has it but it doesn't run; saying so.
fn ensure_service(ctx: &Context, p: &Profile) -> Result<()> {
    use crate::service::{Definition, ServiceCmd};
    let view = crate::service::view(ctx, p)?;
    let who = format!("dockhand: no supervisor runs for profile `{}`", p.name);
    let path = view.path.display();
    let cmd = match (view.definition, view.job) {
        (Definition::Current | Definition::Foreign, Ok(v)) if v.running => return Ok(()),
        (Definition::Current | Definition::Foreign, Ok(v)) if v.known => {
            eprintln!("{who}: starting the login service {path}");
            with_stdout_on_stderr(true, || crate::service::unload::start_socket(ctx))?;
            ServiceCmd::Restart { engine: false }
        }
        // Managed by nix and unloaded (`down --service`): loaded as it is.
        (Definition::Foreign, _) => {
            eprintln!("{who}: loading the login service {path} (managed by nix, kept as it is)");
            return with_stdout_on_stderr(true, || crate::service::unload::load_as_is(ctx));
        }
        (Definition::Missing, _) => {
            eprintln!("{who}: installing the login service {path}");
            ServiceCmd::Install { force: false }
        }
        // Unloaded (`down --service`, launchd): bootstrap it again.
        (Definition::Current, _) => {
            eprintln!("{who}: loading the login service {path}");
            ServiceCmd::Install { force: false }
        }
        _ => {
            eprintln!("{who}: updating and loading the login service {path}");
            ServiceCmd::Install { force: false }
        }
    };
    // The service module reports its steps on stdout: keep stdout for our
    // own result.
    with_stdout_on_stderr(true, || crate::service::run(cmd, ctx)).map(|_| ())
}

/// Run `f` with fd 1 pointing at fd 2 (when `on`).
fn with_stdout_on_stderr<T>(on: bool, f: impl FnOnce() -> T) -> T {
    use std::io::Write;
    if !on {
        return f();
    }
    let _ = std::io::stdout().flush();
    let out = std::io::stdout().as_raw_fd();
    // SAFETY: dup/dup2 on the process's own standard descriptors.
    let saved = unsafe { libc::dup(out) };
    if saved < 0 {
        return f();
    }
    unsafe { libc::dup2(libc::STDERR_FILENO, out) };
    let r = f();
    let _ = std::io::stdout().flush();
    unsafe {
        libc::dup2(saved, out);
        libc::close(saved);
    }
    r
}

/// Wait for a supervisor (just started by the service manager, or
/// starting by hand) to serve its control socket.
async fn wait_for_supervisor(p: &Profile, deadline: Instant, json: bool) -> Result<Client> {
    let mut progress = Progress::new(p, Mode::detect(json));
    loop {
        if let Some(c) = Client::connect(p).await {
            progress.clear();
            return Ok(c);
        }
        if Instant::now() >= deadline {
            progress.clear();
            let sock = crate::control_socket::path(p);
            return Err(Error::NotReady(
                match crate::state::holder_pid(&p.lock_path()) {
                    // An older dockhand, without a control socket.
                    Some(pid) => format!(
                        "the supervisor (pid {pid}) does not serve {}: restart it (`dockhand service restart`, or stop it and `dockhand up`)",
                        sock.display()
                    ),
                    None => format!(
                        "no supervisor answered on {} in time: see `dockhand service status` and `dockhand logs --profile {}`",
                        sock.display(),
                        p.name
                    ),
                },
            ));
        }
        progress.tick();
        sleep(Duration::from_millis(100)).await;
    }
}

/// A failed start worth asking again: not held stopped, supervisor alive.
fn retry(l: &Line) -> bool {
    l.ok == Some(false)
        && l.state.as_ref().is_some_and(|s| s.held.is_none())
        && l.error.as_deref() != Some("dockhand is stopping")
}

/// How following the supervisor ended.
enum End {
    /// Its reply to the request.
    Reply(Box<Line>),
    /// It closed the control socket.
    Closed,
    TimedOut,
    /// Ctrl-C: the supervisor goes on.
    Interrupted,
}

/// Send `req` and follow the supervisor until its reply or the deadline.
async fn drive(
    mut c: Client,
    p: &Profile,
    req: Req,
    deadline: Instant,
    json: bool,
    started: std::time::Instant,
) -> Result<u8> {
    let mut progress = Progress::new(p, Mode::detect(json));
    // One handler for the whole wait: a SIGINT between two polls counts.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Error::io("cannot watch for Ctrl-C", e))?;
    c.send(&req).await?;
    let (end, last) = follow(&mut c, &mut progress, &mut sigint, deadline, !json).await?;
    progress.clear();
    if let End::Interrupted = end {
        let why = "interrupted; the supervisor goes on (`dockhand status` shows where it is)";
        eprintln!("dockhand: {why}");
        if json {
            crate::ui::print_json(&Outcome {
                ok: false,
                error: Some(why),
                elapsed_ms: started.elapsed().as_millis(),
                state: last.as_ref(),
            });
        }
        return Ok(130);
    }
    let (ok, error, state) = outcome(end, last);
    Ok(report(p, ok, error, state.as_ref(), json, started))
}

/// Follow the supervisor's events (showing its phases) until its reply,
/// the deadline or Ctrl-C; a failed start is asked again. Returns how it
/// ended and the last state seen.
async fn follow(
    c: &mut Client,
    progress: &mut Progress,
    sigint: &mut tokio::signal::unix::Signal,
    deadline: Instant,
    follow: bool,
) -> Result<(End, Option<State>)> {
    let mut last: Option<State> = None;
    // The supervisor's first answer is waited for even past the deadline
    // (a bounded moment: it answered `reach` already), so a timeout never
    // reports a running supervisor's state as unknown.
    let first_answer = Instant::now() + PATIENCE;
    let end = loop {
        let give_up = match last {
            Some(_) => deadline,
            None => deadline.max(first_answer),
        };
        tokio::select! {
            biased;
            line = c.next() => match line? {
                Some(l) if l.event.is_some() => {
                    if let Some(s) = l.state {
                        progress.update(&s);
                        last = Some(s);
                    }
                }
                // A failed attempt: the supervisor retries (with backoff)
                // and so do we, until the deadline, unless the engine was
                // held stopped meanwhile or the supervisor is going away.
                Some(l) if retry(&l) => {
                    if let Some(s) = &l.state {
                        progress.update(s);
                        last = Some(s.clone());
                    }
                    sleep(Duration::from_millis(100)).await;
                    c.send(&Req::Start { follow }).await?;
                }
                Some(l) => break End::Reply(Box::new(l)),
                None => break End::Closed,
            },
            _ = sigint.recv() => break End::Interrupted,
            _ = sleep_until(give_up) => break End::TimedOut,
            _ = sleep(Duration::from_millis(100)) => progress.tick(),
        }
    };
    Ok((end, last))
}

/// Whether the request succeeded, the error to report if not, and the
/// state to report (the reply's, else the last one seen).
fn outcome(end: End, last: Option<State>) -> (bool, Option<String>, Option<State>) {
    let timed_out = matches!(end, End::TimedOut);
    let reply = match end {
        End::Reply(l) => Some(*l),
        _ => None,
    };
    let state = reply.as_ref().and_then(|l| l.state.clone()).or(last);
    let ok = reply.as_ref().and_then(|l| l.ok) == Some(true);
    let error = match (&reply, timed_out) {
        (Some(l), _) => l.error.clone(),
        (None, true) => Some(format!(
            "not ready within the timeout; the supervisor keeps trying{}",
            state
                .as_ref()
                .and_then(|s| s.last_error.as_ref())
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        )),
        (None, false) => Some("the supervisor closed the control socket (it is stopping?)".into()),
    };
    (ok, error, state)
}

/// Print the outcome (JSON, or a line and a hint); the exit code.
fn report(
    p: &Profile,
    ok: bool,
    error: Option<String>,
    state: Option<&State>,
    json: bool,
    started: std::time::Instant,
) -> u8 {
    if json {
        crate::ui::print_json(&Outcome {
            ok,
            error: error.as_deref(),
            elapsed_ms: started.elapsed().as_millis(),
            state,
        });
    } else if ok {
        let mark = crate::ui::paint("✓", 32, crate::ui::color());
        println!(
            "{mark} ready in {}: docker answers at unix://{}",
            secs(started.elapsed()),
            // What clients use: dockhand's `listen` socket when set.
            p.listen.as_deref().unwrap_or(&p.socket).display()
        );
    }
    if ok {
        return 0;
    }
    let error = error.unwrap_or_else(|| "not ready".into());
    if !json {
        eprintln!("dockhand: {error}");
        eprintln!(
            "hint: `dockhand logs --profile {0}` shows why; `dockhand doctor --profile {0}` checks the usual causes",
            p.name
        );
    }
    1
}
