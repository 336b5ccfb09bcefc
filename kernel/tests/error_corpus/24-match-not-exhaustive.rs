let n = Some(1);
match n {
    Some(x) => println!("{x}"),
}
