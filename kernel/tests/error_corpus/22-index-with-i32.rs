let v = vec![1, 2];
let i: i32 = 0;
let x = v[i];
