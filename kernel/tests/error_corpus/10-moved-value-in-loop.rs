let names = vec![String::from("a")];
for _ in 0..2 {
    let moved = names;
}
