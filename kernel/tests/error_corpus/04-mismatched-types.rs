let n: u32 = "five";
