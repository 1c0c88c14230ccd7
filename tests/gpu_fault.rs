//! Device faults, one per process: CUDA keeps a process's context unusable after a fault, so
//! each case runs as its own test binary invocation (`GROSR_FAULT=trap|address|midwait`, set by
//! the test itself re-running this binary).

mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use common::stall::{self, Bounded, fill, hold, within};
use common::*;
use grosr::{DeviceBuffer, DevicePtr, Error, Gpu};

const T: Duration = Duration::from_secs(60);
/// How long a child may take: its runtime's build (an uncached compile included), the fault and
/// every check after it.
const CHILD_LIMIT: Duration = Duration::from_secs(300);

/// In the child: fault, then check every call refuses cleanly and a new runtime is refused too.
fn fault_in_this_process(kind: &str) {
    let rt = common::builder().build().expect("runtime");
    eprintln!("fault child: built");
    let job = match kind {
        "trap" => rt.submit(&[Trap { really: 1 }]).unwrap(),
        _ => rt
            .submit(&[Poke {
                addr: DevicePtr::from_raw(0x10),
            }])
            .unwrap(),
    };
    eprintln!("fault child: submitted");
    let err = job.wait_timeout(T).unwrap_err();
    eprintln!("fault child: waited: {err}");
    assert!(matches!(err, Error::DeviceFault(_)), "wait: {err}");
    assert!(
        matches!(
            rt.submit(&[Trap { really: 0 }]).err(),
            Some(Error::DeviceFault(_))
        ),
        "submit after fault"
    );
    assert!(
        matches!(rt.executed::<Trap>(), Err(Error::DeviceFault(_))),
        "executed after fault"
    );
    assert!(
        matches!(job.is_done(), Err(Error::DeviceFault(_))),
        "is_done after fault"
    );
    eprintln!("fault child: every call refused");
    drop(rt);
    eprintln!("fault child: dropped");
    let again = common::builder()
        .build()
        .expect_err("CUDA refuses work after a fault");
    assert!(
        matches!(again, Error::DeviceFault(_)),
        "build after fault: {again}"
    );
    println!("GROSR_FAULT_CHECKED");
}

/// In the child: while threads wait for ring space (a Hold keeps the ring full) and for jobs,
/// the Hold traps; every waiting thread gets `DeviceFault` promptly, and so do later submits,
/// `stop` and `start` (issue 18, D1: a failed wait used to deadlock the producer's lock).
fn fault_while_threads_wait() {
    // How long a wait may take to notice the fault; far less is expected (a health check every
    // 200 µs), but a submit queued behind another's on the producer's lock waits its turn.
    const PROMPT: Duration = Duration::from_secs(15);
    let gpu = Gpu::open(0).unwrap();
    let flag = DeviceBuffer::<u32>::zeroed(&gpu, 1).unwrap();
    let ran = DeviceBuffer::<u32>::zeroed(&gpu, 1).unwrap();
    let marks = DeviceBuffer::<u32>::zeroed(&gpu, 8192).unwrap();
    // A 4 KiB arena holds 16 jobs of 16 marks; a submit then waits for arena space.
    let rt = Arc::new(
        // One submission ring, so that the Hold on its ingest warp fills it.
        common::builder()
            .submit_rings(1)
            .arena_bytes(4096)
            .submit_timeout(Duration::from_millis(300))
            .build()
            .expect("runtime"),
    );
    eprintln!("fault child: built");
    let (tx, report) = mpsc::channel();
    let filler = {
        let rt = rt.clone();
        let (flag, ran, m) = (flag.ptr(), ran.ptr(), marks.ptr());
        Bounded::spawn("the thread that fills the ring", move || {
            let held = rt
                .submit(&[hold(flag, ran, Duration::from_secs(120))])
                .expect("submit the Hold");
            let (jobs, filled) = fill(&rt, m, 0, 16, 256);
            let _ = tx.send(filled);
            // Then it waits for its jobs, which cannot run before the Hold ends.
            std::iter::once(&held)
                .chain(&jobs)
                .map(|j| j.wait_timeout(T))
                .collect::<Vec<_>>()
        })
    };
    let filled = report
        .recv_timeout(T)
        .expect("the filler never reported: the submit that found the ring full hangs");
    assert!(
        matches!(filled.error, Some(Error::Timeout(..))),
        "the ring should be full and a submit time out: {filled:?}"
    );
    eprintln!("fault child: ring full after {} jobs", filled.accepted);
    // Eight threads wait (a minute at most) for arena space.
    let waiting: Vec<_> = (0..8u32)
        .map(|t| {
            let (rt, m) = (rt.clone(), marks.ptr());
            Bounded::spawn(format!("submitter {t} waiting for ring space"), move || {
                rt.submit_timeout(&stall::marks(m, 4096 + t * 16, 16), T)
                    .map(|_job| ())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    flag.write(&[2]).unwrap(); // the Hold traps
    eprintln!("fault child: trap released");
    let deadline = Instant::now() + PROMPT;
    for (t, w) in waiting.into_iter().enumerate() {
        let r = w.join_by(deadline);
        assert!(
            matches!(r, Err(Error::DeviceFault(_))),
            "submitter {t} waiting for ring space: {r:?}"
        );
    }
    for (i, r) in filler.join_by(deadline).into_iter().enumerate() {
        assert!(
            matches!(r, Err(Error::DeviceFault(_))),
            "wait for the filler's job {i} (0: the Hold): {r:?}"
        );
    }
    eprintln!("fault child: every waiting thread got the fault");
    let r = {
        let (rt, m) = (rt.clone(), marks.ptr());
        within(PROMPT, "a submit after the fault", move || {
            rt.submit(&stall::marks(m, 8191, 1)).map(|_job| ())
        })
    };
    assert!(
        matches!(r, Err(Error::DeviceFault(_))),
        "submit after the fault: {r:?}"
    );
    let r = {
        let rt = rt.clone();
        within(PROMPT, "stop after the fault", move || rt.stop())
    };
    assert!(
        matches!(r, Err(Error::DeviceFault(_))),
        "stop after the fault: {r:?}"
    );
    let r = {
        let rt = rt.clone();
        within(PROMPT, "start after the fault", move || rt.start())
    };
    assert!(
        matches!(r, Err(Error::DeviceFault(_))),
        "start after the fault: {r:?}"
    );
    within(PROMPT, "dropping the faulted runtime", move || drop(rt));
    eprintln!("fault child: every call refused");
    println!("GROSR_FAULT_CHECKED");
}

/// Runs `test` (this binary's test of that name) in a child process with `GROSR_FAULT=kind`; in
/// that child, runs `child` instead.
fn run_child(kind: &str, test: &str, child: fn()) {
    if let Ok(k) = std::env::var("GROSR_FAULT") {
        if k == kind {
            child();
        }
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            test,
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GROSR_FAULT", kind)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Both pipes drain on threads of their own, so a chatty child cannot block on a full pipe,
    // and the wait below is bounded: a child that hangs fails the test with what it printed.
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out = read(child.stdout.take().map(|p| Box::new(p) as _));
    let err = read(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + CHILD_LIMIT;
    let status = loop {
        match child.try_wait().unwrap() {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let text = out.join().unwrap() + &err.join().unwrap();
    let Some(status) = status else {
        panic!("child for {kind} still ran after {CHILD_LIMIT:?}:\n{text}");
    };
    assert!(
        status.success() && text.contains("GROSR_FAULT_CHECKED"),
        "child for {kind} failed:\n{text}"
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn trap_faults_are_reported_and_refused_cleanly() {
    run_child(
        "trap",
        "trap_faults_are_reported_and_refused_cleanly",
        || fault_in_this_process("trap"),
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn address_faults_are_reported_and_refused_cleanly() {
    run_child(
        "address",
        "address_faults_are_reported_and_refused_cleanly",
        || fault_in_this_process("address"),
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn a_fault_while_threads_wait_for_ring_space_ends_every_wait_promptly() {
    run_child(
        "midwait",
        "a_fault_while_threads_wait_for_ring_space_ends_every_wait_promptly",
        fault_while_threads_wait,
    );
}
