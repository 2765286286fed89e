//! Counter sets: structs of named `AtomicU64` counters, bumped where things happen and read
//! while the VM runs (`--stats`, SIGUSR1). Every set is declared with [`counter_set!`](crate::counter_set),
//! so all of them share one snapshot mechanism: `snapshot()` returns `(name, value)` pairs in
//! declaration order, the names being what the stats lines print.

/// Declares a counter set: a struct whose fields are `AtomicU64`s (zero by `Default`), with
/// `NAMES` (the printed names, in declaration order) and `snapshot()` (those names with the
/// current values, `Relaxed` loads, as an array).
///
/// A field prints under its own name, or under the string given after `=>` (the unit tests
/// below check what this shows; it is not a doctest, which the aarch64 test stage, under
/// qemu-user, could not run: doctests are not linked statically):
///
/// ```text
/// devices::counter_set! {
///     /// Accesses of one region.
///     pub struct Counters {
///         /// Reads forwarded.
///         pub reads,
///         pub dropped => "out_of_bounds_dropped",
///     }
/// }
/// let c = Counters::default();
/// c.reads.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
/// assert_eq!(c.snapshot(), [("reads", 2), ("out_of_bounds_dropped", 0)]);
/// ```
#[macro_export]
macro_rules! counter_set {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $fvis:vis $field:ident $(=> $label:literal)?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        $vis struct $name {
            $(
                $(#[$fmeta])*
                $fvis $field: ::std::sync::atomic::AtomicU64,
            )*
        }

        impl $name {
            /// The printed name of each counter, in declaration order.
            pub const NAMES: [&'static str; [$(stringify!($field)),*].len()] =
                [$($crate::counter_set!(@label $field $($label)?)),*];

            /// Each counter's printed name and current value, in declaration order.
            pub fn snapshot(&self) -> [(&'static str, u64); Self::NAMES.len()] {
                [$((
                    $crate::counter_set!(@label $field $($label)?),
                    self.$field.load(::std::sync::atomic::Ordering::Relaxed),
                )),*]
            }
        }
    };
    (@label $field:ident) => {
        stringify!($field)
    };
    (@label $field:ident $label:literal) => {
        $label
    };
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    crate::counter_set! {
        /// A set for the tests.
        struct Sample {
            /// Documented.
            first,
            renamed => "second_printed",
            pub third,
        }
    }

    #[test]
    fn snapshot_names_values_in_declaration_order() {
        let s = Sample::default();
        assert_eq!(
            s.snapshot(),
            [("first", 0), ("second_printed", 0), ("third", 0)]
        );
        s.first.fetch_add(1, Ordering::Relaxed);
        s.renamed.fetch_add(5, Ordering::Relaxed);
        s.third.fetch_add(7, Ordering::Relaxed);
        s.third.fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            s.snapshot(),
            [("first", 1), ("second_printed", 5), ("third", 8)]
        );
        assert_eq!(Sample::NAMES, ["first", "second_printed", "third"]);
    }

    /// The printed names of the devices' sets are part of the `--stats` output.
    #[test]
    fn device_sets_print_the_names_they_always_did() {
        assert_eq!(
            crate::vfio::region::Counters::NAMES,
            [
                "trapped_reads",
                "trapped_writes",
                "out_of_bounds_dropped",
                "io_errors"
            ]
        );
        assert_eq!(
            crate::virtio::Counters::NAMES,
            [
                "requests",
                "read_bytes",
                "write_bytes",
                "userspace_notifies",
                "interrupts",
                "dropped"
            ]
        );
    }

    /// Each field feeds its own slot (a set whose values came out shifted would fail here).
    #[test]
    fn device_sets_read_each_field_into_its_own_slot() {
        let v = crate::virtio::Counters::default();
        v.notifies.fetch_add(3, Ordering::Relaxed);
        v.interrupts.fetch_add(4, Ordering::Relaxed);
        assert_eq!(v.snapshot()[3], ("userspace_notifies", 3));
        assert_eq!(v.snapshot()[4], ("interrupts", 4));
        let r = crate::vfio::region::Counters::default();
        r.out_of_bounds.fetch_add(2, Ordering::Relaxed);
        r.io_errors.fetch_add(9, Ordering::Relaxed);
        assert_eq!(
            r.snapshot(),
            [
                ("trapped_reads", 0),
                ("trapped_writes", 0),
                ("out_of_bounds_dropped", 2),
                ("io_errors", 9)
            ]
        );
    }
}
