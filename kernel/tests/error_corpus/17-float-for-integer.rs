fn square(x: i32) -> i32 { x * x }
let r = square(2.5);
