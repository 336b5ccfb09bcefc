:label at-most-five
// Keep the :label line: the self-check reads this cell's footer by that name.
server.reset_stats();
let limit = 5;
let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(limit));
let handles: Vec<_> = (1..=20)
    .map(|id| {
        let permits = permits.clone();
        tokio::spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            get(server.addr, id).await
        })
    })
    .collect();
let mut limited: Vec<u64> = Vec::new();
for handle in handles {
    limited.push(handle.await.unwrap());
}
let peak = server.stats().peak;
limited.len()
