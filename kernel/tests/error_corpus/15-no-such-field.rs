struct P { x: i32 }
let p = P { x: 1, y: 2 };
