let x: u8 = 256;
