:label read-timeout
// Keep the :label line: the self-check reads this cell's footer by that name.
fn fetch_within(addr: SocketAddr, request: &str, limit: Duration) -> Option<u64> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(limit)).ok()?; // every read gives up after `limit`
    stream.write_all(format!("{request}\n").as_bytes()).ok()?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).ok()?; // Err (→ None) on timeout
    reply.split_whitespace().last()?.parse().ok()
}
let limit = 2 * DELAY;
let requests = ["1", "2 slow", "3 slow"];
let answers: Vec<Option<u64>> = requests.iter().map(|r| fetch_within(server.addr, r, limit)).collect();
answers
