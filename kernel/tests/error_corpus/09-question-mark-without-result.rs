fn parse() -> i32 {
    let n: i32 = "4".parse()?;
    n
}
