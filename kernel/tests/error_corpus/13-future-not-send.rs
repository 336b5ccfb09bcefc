let m = std::sync::Arc::new(std::sync::Mutex::new(0));
let m2 = m.clone();
tokio::spawn(async move {
    let g = m2.lock().unwrap();
    tokio::task::yield_now().await;
    drop(g);
});
