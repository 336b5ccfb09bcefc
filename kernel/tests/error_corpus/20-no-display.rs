struct Point;
println!("{}", Point);
