//! Keeps a cell's printed output within what a browser can take: past
//! `RUSTMETER_OUTPUT_LIMIT` bytes (default 2 MB, `0` or `off` = no limit) stream text is no
//! longer published but written to a file, and the cell shows one note naming that file.

use std::io::Write;
use std::path::PathBuf;

/// `RUSTMETER_OUTPUT_LIMIT` in bytes; `None` = no limit.
pub fn limit_from_env() -> Option<u64> {
    crate::settings::size_or_off(&crate::settings::OUTPUT_LIMIT)
}

/// What to do with one piece of stream text.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Publish this text (possibly the part of it below the limit).
    Publish(String),
    /// The limit was just reached: publish the text before it, then this note.
    PublishThenNote(String, String),
    /// Over the limit: already saved to the file.
    Saved,
}

pub struct OutputBudget {
    limit: Option<u64>,
    published: u64,
    total: u64,
    file: Option<(PathBuf, std::fs::File)>,
    path: PathBuf,
}

impl OutputBudget {
    pub fn new(limit: Option<u64>, path: PathBuf) -> OutputBudget {
        OutputBudget {
            limit,
            published: 0,
            total: 0,
            file: None,
            path,
        }
    }

    pub fn route(&mut self, text: String) -> Route {
        self.total += text.len() as u64;
        let Some(limit) = self.limit else {
            return Route::Publish(text);
        };
        if self.file.is_some() {
            self.save(&text);
            return Route::Saved;
        }
        let room = limit.saturating_sub(self.published) as usize;
        if text.len() <= room {
            self.published += text.len() as u64;
            return Route::Publish(text);
        }
        // Cut at a line end (or a char boundary) below the limit; save the rest.
        let mut end = room.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let cut = text[..end].rfind('\n').map_or(0, |i| i + 1);
        self.published += cut as u64;
        let (shown, rest) = text.split_at(cut);
        self.save(rest);
        let note = format!(
            "\n[rustmeter] output truncated after {} (RUSTMETER_OUTPUT_LIMIT); the rest is saved in {}\n",
            crate::telemetry::render::bytes(limit),
            self.path.display()
        );
        Route::PublishThenNote(shown.to_string(), note)
    }

    fn save(&mut self, text: &str) {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            match crate::private_dir::open_for_writing(&self.path, false) {
                Ok(f) => self.file = Some((self.path.clone(), f)),
                Err(_) => return,
            }
        }
        if let Some((_, f)) = &mut self.file {
            let _ = f.write_all(text.as_bytes());
        }
    }

    /// The closing note for a truncated cell, with the full size.
    pub fn summary(&self) -> Option<String> {
        self.file.as_ref().map(|(path, _)| {
            format!(
                "[rustmeter] this cell printed {} in all; {} shown, the rest in {}\n",
                crate::telemetry::render::bytes(self.total),
                crate::telemetry::render::bytes(self.published),
                path.display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_at_a_line_and_saves_the_rest() {
        let path = std::env::temp_dir().join(format!("rm-overflow-{}.txt", std::process::id()));
        let mut b = OutputBudget::new(Some(10), path.clone());
        assert_eq!(b.route("abc\n".into()), Route::Publish("abc\n".into()));
        match b.route("defg\nhijk\n".into()) {
            Route::PublishThenNote(shown, note) => {
                assert_eq!(shown, "defg\n");
                assert!(note.contains(&path.display().to_string()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(b.route("more\n".into()), Route::Saved);
        assert!(b.summary().unwrap().contains("19 B in all"));
        drop(b);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hijk\nmore\n");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn cuts_never_split_a_character() {
        let path =
            std::env::temp_dir().join(format!("rm-overflow-utf8-{}.txt", std::process::id()));
        for limit in 1..12 {
            let mut b = OutputBudget::new(Some(limit), path.clone());
            let _ = b.route("→é→é\n→é→é\n".into());
        }
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn no_limit_publishes_everything() {
        let mut b = OutputBudget::new(None, PathBuf::from("/nonexistent/x"));
        assert_eq!(
            b.route("x".repeat(10_000_000)),
            Route::Publish("x".repeat(10_000_000))
        );
        assert!(b.summary().is_none());
    }
}
