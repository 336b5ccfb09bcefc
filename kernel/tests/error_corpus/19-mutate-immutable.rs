let s = String::new();
s.push('a');
