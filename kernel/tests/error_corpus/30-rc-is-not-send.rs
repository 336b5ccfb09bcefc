let rc = std::rc::Rc::new(1);
std::thread::spawn(move || println!("{}", rc));
