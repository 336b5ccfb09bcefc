:label keep-responsive
// Keep the :label line: the self-check reads this cell's footer by that name.
let jobs = tokio::runtime::Handle::current().metrics().num_workers().max(2);
let job = Duration::from_secs(1);
let heartbeat = Heartbeat::start();
let handles: Vec<_> = (0..jobs)
    .map(|_| tokio::task::spawn_blocking(move || spin(job)))
    .collect();
let mut results: Vec<u64> = Vec::new();
for handle in handles {
    results.push(handle.await.unwrap());
}
let gap_ms = heartbeat.stop().await;
println!("{} results; longest heartbeat gap: {gap_ms} ms", results.len());
