fn greet(name: String) -> usize { name.len() }
greet("bob");
