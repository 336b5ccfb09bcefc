//! The hidden cell run in every new user-code child before the learner's first cell.
//!
//! It runs inside the cells' shared `libstd.so` (not this binary's std), which is the only
//! place a panic hook or a stdout flush reaches user code. Everything sits inside one
//! block, so evcxr keeps no items or variables from it. The one exception is
//! [`QUICK_DISPLAY`], items kept on purpose, compiled with the first prelude.

use crate::child_runtime::{END_OF_CELL, END_OF_CELL_FN, PANIC};

/// Items defined once per kernel, before the prelude: a cell ending in a std value
/// (`x + 1`, a `Vec`, an `Option`) then compiles once instead of twice.
///
/// evcxr first compiles a final expression as `(expr).evcxr_display()` and, when that
/// fails (no such method), compiles the cell again printing `{:?}`: about 100 ms and a
/// second cargo run per cell. This trait gives std types that method, printing exactly
/// what evcxr's second compile prints. Only std types get it: they cannot have an
/// inherent `evcxr_display`, and a crate's own `evcxr_display` on them through a trait
/// would be ambiguous with this one (evcxr then falls back to `{:?}`, as before).
/// Inherent `evcxr_display` methods of the learner's types win over a trait's.
pub const QUICK_DISPLAY: &str = r#"mod __rustmeter_display {
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
"#;

/// Replaces [`QUICK_DISPLAY`] once the learner changes how evcxr prints values (`:fmt`,
/// `:types`): every value then takes evcxr's own path, which honours those settings.
pub const QUICK_DISPLAY_OFF: &str = "mod __rustmeter_display {\n    pub trait Show {}\n}";

/// evcxr commands after which [`QUICK_DISPLAY_OFF`] must run.
pub fn changes_value_format(code: &str) -> bool {
    code.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with(":fmt") || l.starts_with(":types")
    })
}

/// Rust source of the prelude cell.
pub fn source() -> String {
    format!(
        r#####"{{
    extern "C" fn rustmeter_end_of_cell() {{
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all("{eoc}\n".as_bytes());
        let _ = out.flush();
    }}
    fn rustmeter_json_string(s: &str) -> String {{
        let mut out = String::from("\"");
        for c in s.chars() {{
            match c {{
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{{:04x}}", c as u32)),
                c => out.push(c),
            }}
        }}
        out.push('"');
        out
    }}
    std::panic::set_hook(Box::new(|info| {{
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "Box<dyn Any>".to_string());
        let location = info
            .location()
            .map(|l| format!("{{}}:{{}}:{{}}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>").to_string();
        // The cell runs on the child's main thread: its thread id equals the process id.
        let main = std::fs::read_link("/proc/thread-self")
            .map(|p| {{
                let p = p.to_string_lossy().to_string();
                let mut parts = p.split('/');
                let pid = parts.next().unwrap_or("");
                p.ends_with(&format!("/task/{{pid}}"))
            }})
            .unwrap_or(false);
        // A panic of the cell itself becomes the cell's one error message; panics of
        // other threads are only reported on stderr, as Rust does.
        if !main {{
            eprintln!("thread '{{name}}' panicked at {{location}}:\n{{message}}");
        }}
        println!(
            "{panic}{{{{\"message\":{{}},\"location\":{{}},\"main\":{{}}}}}}",
            rustmeter_json_string(&message),
            rustmeter_json_string(&location),
            main
        );
    }}));
    println!("{eoc_fn}{{}}", rustmeter_end_of_cell as usize);
}}"#####,
        eoc = END_OF_CELL.escape_default(),
        eoc_fn = END_OF_CELL_FN.escape_default(),
        panic = PANIC.escape_default(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn prelude_is_one_block_with_markers() {
        let src = super::source();
        assert!(src.starts_with('{') && src.ends_with('}'));
        assert!(src.contains("\\u{1}RM_EOC_FN "));
        assert!(src.contains("\\u{1}RM_PANIC "));
        assert!(src.contains("set_hook"));
    }

    #[test]
    fn value_format_commands_are_recognised() {
        assert!(super::changes_value_format(":fmt {:#?}"));
        assert!(super::changes_value_format("let a = 1;\n  :types"));
        assert!(!super::changes_value_format("let fmt = 1;\n// :fmt"));
    }
}
