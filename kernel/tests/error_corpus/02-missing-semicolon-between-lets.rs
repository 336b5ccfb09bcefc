let x: i32 = 5
let y = 6;
