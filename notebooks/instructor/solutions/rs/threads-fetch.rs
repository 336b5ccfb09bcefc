:label threads-fetch
// Keep the :label line: the self-check reads this cell's footer by that name.
let ids: Vec<u64> = (1..=10).collect();
let handles: Vec<std::thread::JoinHandle<u64>> = ids
    .iter()
    .map(|&id| std::thread::spawn(move || fetch(server.addr, id)))
    .collect(); // all threads started…
let nexts: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect(); // …then joined in order
nexts
