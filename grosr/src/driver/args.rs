//! Typed kernel arguments: a tuple of references, one per kernel parameter.
//!
//! The driver takes a kernel's arguments as an array of pointers, one per parameter, each to a
//! value of the parameter's type, and copies the values at launch (or when a graph node is
//! added). [`KernelArgs`] builds that array from a tuple such as `(&ptr, &n, &status)`, so no
//! caller casts pointers by hand; the borrows keep the values alive across the call.

use std::ffi::c_void;

/// One kernel argument: a pointer to the value the driver copies.
pub trait KernelArg {
    /// The address of the argument's value.
    fn pointer(&self) -> *mut c_void;
}

/// A plain value (an integer, a device address, a `#[repr(C)]` struct) passed by value.
impl<T: bytemuck::Pod> KernelArg for &T {
    fn pointer(&self) -> *mut c_void {
        // The driver only reads through it.
        *self as *const T as *mut c_void
    }
}

/// A parameter passed by value whose type is known only at run time (a task record): its
/// bytes, at least the parameter's size.
#[derive(Clone, Copy, Debug)]
pub struct RecordArg<'a>(pub &'a [u8]);

impl KernelArg for RecordArg<'_> {
    fn pointer(&self) -> *mut c_void {
        // The driver only reads through it.
        self.0.as_ptr() as *mut c_void
    }
}

/// The arguments of one launch, as the driver's array of pointers.
pub trait KernelArgs {
    /// The pointer array.
    type Pointers: AsMut<[*mut c_void]>;
    /// One pointer per argument, in order.
    fn pointers(&self) -> Self::Pointers;
}

impl KernelArgs for () {
    type Pointers = [*mut c_void; 0];
    fn pointers(&self) -> Self::Pointers {
        []
    }
}

macro_rules! tuple_args {
    ($n:literal: $($name:ident $idx:tt),+) => {
        impl<$($name: KernelArg),+> KernelArgs for ($($name,)+) {
            type Pointers = [*mut c_void; $n];
            fn pointers(&self) -> Self::Pointers {
                [$(self.$idx.pointer()),+]
            }
        }
    };
}

tuple_args!(1: A 0);
tuple_args!(2: A 0, B 1);
tuple_args!(3: A 0, B 1, C 2);
tuple_args!(4: A 0, B 1, C 2, D 3);
tuple_args!(5: A 0, B 1, C 2, D 3, E 4);
tuple_args!(6: A 0, B 1, C 2, D 3, E 4, F 5);
tuple_args!(7: A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_args!(8: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pointer_points_at_its_argument() {
        let (a, b, record) = (7u64, 3u32, [1u8, 2, 3]);
        let p = (&a, &b, RecordArg(&record)).pointers();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0] as *const u64, &a as *const u64);
        assert_eq!(p[1] as *const u32, &b as *const u32);
        assert_eq!(p[2] as *const u8, record.as_ptr());
        assert_eq!(().pointers().len(), 0);
    }
}
