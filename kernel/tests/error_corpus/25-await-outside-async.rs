fn tick() {
    tokio::task::yield_now().await;
}
