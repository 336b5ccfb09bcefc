mod __rustmeter_display {
    pub trait Show {
        fn evcxr_display(&self);
    }
    pub trait Plain: ::std::fmt::Debug {}
    impl<T: Plain + ?Sized> Show for T {
        fn evcxr_display(&self) {
            use ::std::io::Write;
            let text = format!("{:?}", self);
            let mut out = ::std::io::stdout().lock();
            let sent = out
                .write_all(b"EVCXR_BEGIN_CONTENT text/plain
")
                .and_then(|_| out.write_all(text.as_bytes()))
                .and_then(|_| out.write_all(b"
EVCXR_END_CONTENT
"));
            if let Err(error) = sent {
                eprintln!("Failed to send content to parent: {:?}", error);
                ::std::process::exit(1);
            }
        }
    }
    macro_rules! plain {
        ($($t:ty),*) => { $(impl Plain for $t {})* };
    }
    plain!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64, bool,
        char, str, String, (), ::std::time::Duration);
    impl<T: Plain + ?Sized> Plain for &T {}
    impl<T: Plain + ?Sized> Plain for &mut T {}
    impl<T: Plain + ?Sized> Plain for Box<T> {}
    impl<T: Plain + ?Sized> Plain for ::std::rc::Rc<T> {}
    impl<T: Plain + ?Sized> Plain for ::std::sync::Arc<T> {}
    impl<T: Plain> Plain for [T] {}
    impl<T: Plain, const N: usize> Plain for [T; N] {}
    impl<T: Plain> Plain for Vec<T> {}
    impl<T: Plain> Plain for ::std::collections::VecDeque<T> {}
    impl<T: Plain> Plain for ::std::collections::BTreeSet<T> {}
    impl<T: Plain, S> Plain for ::std::collections::HashSet<T, S> {}
    impl<K: Plain, V: Plain> Plain for ::std::collections::BTreeMap<K, V> {}
    impl<K: Plain, V: Plain, S> Plain for ::std::collections::HashMap<K, V, S> {}
    impl<T: Plain> Plain for Option<T> {}
    impl<T: Plain, E: Plain> Plain for Result<T, E> {}
    impl<A: Plain> Plain for (A,) {}
    impl<A: Plain, B: Plain> Plain for (A, B) {}
    impl<A: Plain, B: Plain, C: Plain> Plain for (A, B, C) {}
    impl<A: Plain, B: Plain, C: Plain, D: Plain> Plain for (A, B, C, D) {}
}
use __rustmeter_display::Show as __RustmeterShow;
