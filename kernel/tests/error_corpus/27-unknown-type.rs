let x: Strng = String::new();
