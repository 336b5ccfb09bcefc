let v = vec![1];
std::thread::spawn(|| println!("{:?}", v));
