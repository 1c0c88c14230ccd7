//! Without a driver, GPU or NVRTC, grosr returns an error that says what is missing (no panic).
//! On a machine that has all three this checks the happy path's first step instead.

use grosr::Error;

#[test]
fn a_missing_driver_or_gpu_is_an_error_that_says_what_to_install() {
    match grosr::Gpu::open(0) {
        Err(Error::NoDriver) => {
            let msg = Error::NoDriver.to_string();
            assert!(
                msg.contains("libcuda.so") && msg.contains("install"),
                "{msg}"
            );
            let err = grosr_lab::workloads::builder()
                .build()
                .expect_err("no driver, no runtime");
            assert_eq!(err, Error::NoDriver);
        }
        Err(Error::NoDevice(what)) => assert!(!what.is_empty()),
        Err(other) => panic!("unexpected error without a usable GPU: {other}"),
        Ok(gpu) => assert!(gpu.sm_count > 0 && gpu.arch >= 70),
    }
}

#[test]
fn a_missing_nvrtc_is_an_error_that_says_what_to_install() {
    match grosr::unstable::nvrtc_available() {
        Err(e) => {
            assert_eq!(e, Error::NoNvrtc);
            assert!(
                e.to_string().contains("pip install nvidia-cuda-nvrtc"),
                "{e}"
            );
        }
        Ok(()) => assert!(grosr::unstable::nvrtc_version().unwrap().0 >= 12),
    }
}

#[test]
fn the_builder_rejects_bad_settings_before_touching_the_gpu() {
    for (builder, what) in [
        (
            grosr_lab::workloads::builder().queue_capacity(1000),
            "queue_capacity",
        ),
        (
            grosr_lab::workloads::builder().arena_bytes(16),
            "arena_bytes",
        ),
        (grosr_lab::workloads::builder().max_sms(0), "max_sms"),
    ] {
        match builder.build() {
            Err(Error::Config(msg)) => assert!(msg.contains(what), "{msg}"),
            Err(e) => panic!("{what}: expected a configuration error, got {e}"),
            Ok(_) => panic!("{what}: accepted"),
        }
    }
}

mod one {
    #[grosr::task(cuda = "")]
    pub struct Same {
        pub x: u32,
    }
}
mod two {
    #[grosr::task(cuda = "")]
    pub struct Same {
        pub y: u64,
    }
}

#[test]
fn two_task_types_with_one_c_name_are_refused() {
    let err = grosr::Runtime::builder()
        .task::<one::Same>()
        .task::<two::Same>()
        .build()
        .err();
    assert_eq!(err, Some(Error::DuplicateTask("Same")));
}
