let v = vec![1];
tokio::spawn(async { v.len() });
