//! Device faults, one per process: CUDA keeps a process's context unusable after a fault, so
//! each case runs as its own test binary invocation (`GROSR_FAULT=trap|address`, set by the
//! test itself re-running this binary).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use grosr::{DevicePtr, Error};

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

fn run_child(kind: &str) {
    if let Ok(k) = std::env::var("GROSR_FAULT") {
        if k == kind {
            fault_in_this_process(kind);
        }
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let test = format!("{kind}_faults_are_reported_and_refused_cleanly");
    let mut child = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            &test,
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
    run_child("trap");
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn address_faults_are_reported_and_refused_cleanly() {
    run_child("address");
}
