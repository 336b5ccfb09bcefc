println!("{}", undefined_name);
