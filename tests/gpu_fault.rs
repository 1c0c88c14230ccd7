//! Device faults, one per process: CUDA keeps a process's context unusable after a fault, so
//! each case runs as its own test binary invocation (`GROSR_FAULT=trap|address`, set by the
//! test itself re-running this binary).

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use grosr::{DevicePtr, Error};

const T: Duration = Duration::from_secs(60);

/// In the child: fault, then check every call refuses cleanly and a new runtime is refused too.
fn fault_in_this_process(kind: &str) {
    let rt = common::builder().build().expect("runtime");
    let job = match kind {
        "trap" => rt.submit(&[Trap { really: 1 }]).unwrap(),
        _ => rt
            .submit(&[Poke {
                addr: DevicePtr::from_raw(0x10),
            }])
            .unwrap(),
    };
    let err = job.wait_timeout(T).unwrap_err();
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
    drop(rt);
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
    let out = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            &test,
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GROSR_FAULT", kind)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("GROSR_FAULT_CHECKED"),
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
