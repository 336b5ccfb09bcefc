{
    extern "C" fn rustmeter_end_of_cell() {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all("@@END_OF_CELL@@\n".as_bytes());
        let _ = out.flush();
    }
    fn rustmeter_json_string(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "Box<dyn Any>".to_string());
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>").to_string();
        // The cell runs on the child's main thread: its thread id equals the process id.
        let main = std::fs::read_link("/proc/thread-self")
            .map(|p| {
                let p = p.to_string_lossy().to_string();
                let mut parts = p.split('/');
                let pid = parts.next().unwrap_or("");
                p.ends_with(&format!("/task/{pid}"))
            })
            .unwrap_or(false);
        // A panic of the cell itself becomes the cell's one error message; panics of
        // other threads are only reported on stderr, as Rust does.
        if !main {
            eprintln!("thread '{name}' panicked at {location}:\n{message}");
        }
        println!(
            "@@PANIC@@{{\"message\":{},\"location\":{},\"main\":{}}}",
            rustmeter_json_string(&message),
            rustmeter_json_string(&location),
            main
        );
    }));
    println!("@@END_OF_CELL_FN@@{}", rustmeter_end_of_cell as usize);
}
