//! The hidden cell run in every new user-code child before the learner's first cell.
//!
//! It runs inside the cells' shared `libstd.so` (not this binary's std), which is the only
//! place a panic hook or a stdout flush reaches user code. Everything sits inside one
//! block, so evcxr keeps no items or variables from it and later cells compile no faster
//! or slower because of it.

use crate::child_runtime::{END_OF_CELL, END_OF_CELL_FN, PANIC};

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
}
