async fn fetch() -> u32 { 1 }
fn check() -> Result<(), String> { Ok(()) }
check();
let too_big: u8 = 256;
