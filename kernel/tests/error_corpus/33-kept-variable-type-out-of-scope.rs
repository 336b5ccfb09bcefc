let outcome = std::thread::spawn(|| 1).join();
