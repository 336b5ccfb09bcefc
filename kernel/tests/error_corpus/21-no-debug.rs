struct Point;
println!("{:?}", Point);
