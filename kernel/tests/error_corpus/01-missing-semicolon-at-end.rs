let v: Vec<u64> = (1..=10).collect()
